//! Where the forwarders run: a thread of their own with a single-threaded runtime, at a lower
//! CPU priority (nice 10, its file-reading threads too), so that when the cores are busy the
//! admission answers get them first and the sinks catch up in bigger batches after.

use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::forwarder::Forwarder;

/// How much lower than the server the forwarders run (a nice value).
#[cfg(target_os = "linux")]
const NICENESS: i32 = 10;

/// Threads that read the journal and store cursors for the forwarders.
const BLOCKING_THREADS: usize = 2;

/// The forwarders' thread; [`Forwarding::stop`] ends it.
pub struct Forwarding {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Forwarding {
    /// Starts `forwarders` (none: no thread).
    pub fn start(forwarders: Vec<Forwarder>) -> std::io::Result<Forwarding> {
        if forwarders.is_empty() {
            return Ok(Forwarding { stop: None, thread: None });
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("driftgate-sinks-io")
            .on_thread_start(lower_priority)
            // Few file-reading threads, kept: a batch's buffer is read on one and freed on the
            // forwarders' thread, and the allocator takes such memory back when its owner next
            // allocates. A changing crowd of short-lived threads left it stranded (RSS crept).
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_keep_alive(std::time::Duration::from_secs(600))
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("driftgate-sinks".to_owned()).spawn(move || {
            lower_priority();
            runtime.block_on(async move {
                let tasks: Vec<_> = forwarders.into_iter().map(|f| tokio::spawn(f.run())).collect();
                let _ = stopped.await;
                for task in tasks {
                    task.abort();
                }
            });
            // Dropping the runtime ends the tasks; a file read in progress finishes on its own.
            runtime.shutdown_background();
        })?;
        Ok(Forwarding { stop: Some(stop), thread: Some(thread) })
    }

    /// Stops every forwarder where it is: each stored its cursor after its last delivered
    /// batch, so a restart redelivers at most that batch.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the sinks' thread panicked");
        }
    }
}

/// Lowers the calling thread's CPU priority (Linux nice values are per thread); elsewhere, or
/// if refused, it runs at the server's.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), NICENESS) {
            tracing::debug!(error = %e, "the sinks' thread keeps the server's CPU priority");
        }
    }
}

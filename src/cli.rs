//! The command line: one subcommand per command of DESIGN.md.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::config::{EventsMode, LogFormat, Settings};
use crate::server::App;

/// driftgate: an admission webhook that makes Git the only writer of service-mesh configuration.
#[derive(Debug, Parser)]
#[command(name = "driftgate", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the admission webhook server (HTTPS: /validate, /healthz, /readyz).
    Serve(ServeArgs),
    /// Validate policy files; report each problem with file, line and reason.
    Check {
        /// Policy folder.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Make a CA and an ECDSA P-256 serving certificate (ca.crt, tls.crt, tls.key).
    Certs(CertsArgs),
    /// Print the whole install as YAML, with webhook configurations derived from the policies.
    Manifests(commands::manifests::ManifestsArgs),
    /// Server-side apply the webhook configurations to the cluster of the current kubeconfig.
    Register(commands::register::RegisterArgs),
    /// Delete the webhook configurations from the cluster (absent is fine).
    Unregister(commands::identity::Identity),
    /// Read drift events from the journal: filter them, print a table, JSON, a summary or PolicyReports.
    Review(commands::review::ReviewArgs),
    /// Replay AdmissionReview files offline against the policies; check test files' expectations.
    Test(commands::test::TestArgs),
    /// Propose exemptions for the automated writers seen in drift events (audit mode first).
    Suggest(commands::suggest::SuggestArgs),
    /// List live protected objects last written outside GitOps (managedFields); exit 1 on drift.
    Audit(commands::audit::AuditArgs),
    /// Grant, list and revoke time-boxed BreakGlassGrants.
    BreakGlass(commands::break_glass::BreakGlassArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Settings file (YAML or TOML); environment DRIFTGATE_<SETTING> and flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// HTTPS address [default: 127.0.0.1:8443].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Policy folder [default: policies].
    #[arg(long, value_name = "DIR")]
    policies: Option<PathBuf>,
    /// Folder with tls.crt and tls.key [default: certs].
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// Drift-event journal [default: drift-events.jsonl].
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// driftgate's own namespace, never protected [default: driftgate].
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Log format [default: text].
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// CA bundle of the kube-apiserver's client certificate; /validate and /mutate then answer
    /// only clients that present a certificate it signed.
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
    /// Kubernetes Events for drift: auto (on when a kubeconfig or an in-cluster service account
    /// is found), on, off [default: auto].
    #[arg(long, value_enum)]
    events: Option<EventsMode>,
    /// BreakGlassGrants, watched in driftgate's namespace: auto (on when a kubeconfig or an
    /// in-cluster service account is found), on, off [default: auto].
    #[arg(long, value_enum)]
    grants: Option<EventsMode>,
}

#[derive(Debug, Args)]
struct CertsArgs {
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// DNS names for the serving certificate (repeat the flag).
    #[arg(long, value_name = "NAME")]
    dns: Vec<String>,
    /// IP addresses for the serving certificate (repeat the flag).
    #[arg(long, value_name = "IP")]
    ip: Vec<IpAddr>,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
    /// Instead: make a client CA and a client certificate with this common name for the
    /// kube-apiserver (e.g. kube-apiserver), with its AdmissionConfiguration and kubeconfig.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["dns", "ip"])]
    client: Option<String>,
    /// --client: driftgate's namespace (the kubeconfig names driftgate.NS.svc).
    #[arg(long, value_name = "NS", default_value = "driftgate", requires = "client")]
    namespace: String,
    /// --client: the host the webhooks call instead of the Service (HOST:PORT of a --url install).
    #[arg(long, value_name = "HOST", requires = "client")]
    host: Option<String>,
    /// --client: where the kube-apiserver will read the files (the path admission-config.yaml
    /// names) [default: /etc/kubernetes/driftgate].
    #[arg(long, value_name = "DIR", requires = "client")]
    apiserver_dir: Option<PathBuf>,
}

impl ServeArgs {
    fn overrides(&self) -> Vec<(&'static str, String)> {
        let mut o = Vec::new();
        let path = |p: &PathBuf| p.display().to_string();
        if let Some(v) = self.listen {
            o.push(("listen", v.to_string()));
        }
        if let Some(v) = &self.policies {
            o.push(("policies", path(v)));
        }
        if let Some(v) = &self.cert_dir {
            o.push(("cert_dir", path(v)));
        }
        if let Some(v) = &self.journal {
            o.push(("journal", path(v)));
        }
        if let Some(v) = &self.namespace {
            o.push(("namespace", v.clone()));
        }
        if let Some(v) = &self.client_ca {
            o.push(("client_ca", path(v)));
        }
        if let Some(v) = self.log_format {
            o.push(("log_format", format!("{v:?}").to_lowercase()));
        }
        if let Some(v) = self.events {
            o.push(("events", format!("{v:?}").to_lowercase()));
        }
        if let Some(v) = self.grants {
            o.push(("grants", format!("{v:?}").to_lowercase()));
        }
        o
    }
}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check { dir } => return commands::check::run(&dir),
        Command::Certs(args) => match &args.client {
            Some(name) => commands::certs::run_client(
                &args.out,
                name,
                &args.namespace,
                args.host.as_deref(),
                args.apiserver_dir.as_deref().unwrap_or(Path::new("/etc/kubernetes/driftgate")),
                args.days,
                args.force,
            ),
            None => commands::certs::run(&args.out, args.dns, args.ip, args.days, args.force),
        },
        Command::Manifests(args) => commands::manifests::run(&args).map_err(Into::into),
        Command::Register(args) => commands::register::run(&args).map_err(Into::into),
        Command::Unregister(identity) => commands::register::run_unregister(&identity).map_err(Into::into),
        Command::Review(args) => return commands::review::run(&args),
        Command::Test(args) => return commands::test::run(&args),
        Command::Suggest(args) => return commands::suggest::run(&args),
        Command::Audit(args) => return commands::audit::run(&args),
        Command::BreakGlass(args) => return commands::break_glass::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("driftgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::load(args.config.as_deref(), &args.overrides())?;
    let telemetry = crate::telemetry::init(settings.log_format, &settings.log_level);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("failed to start the runtime")?;
    let served = runtime.block_on(async {
        let server = App::from_settings(&settings).await?;
        let addr = server.local_addr().context("failed to read the bound address")?;
        let metrics = server.metrics_addr().context("failed to read the metrics address")?;
        tracing::info!(%addr, %metrics, journal = %settings.journal.display(), "driftgate serving");
        server.run(shutdown_signal()).await;
        tracing::info!("driftgate stopped");
        Ok::<(), anyhow::Error>(())
    });
    telemetry.shutdown();
    served
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("interrupted"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

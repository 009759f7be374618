//! `driftgate certs`: makes a CA and a serving certificate into a folder.

use std::net::IpAddr;
use std::path::Path;

use crate::certs::{self, CertRequest};

/// Writes `ca.crt`, `tls.crt` and `tls.key` for the names into `out`.
pub fn run(out: &Path, dns: Vec<String>, ips: Vec<IpAddr>, days: u32, force: bool) -> anyhow::Result<()> {
    let bundle = certs::generate(&CertRequest { dns, ips, days })?;
    certs::write(out, &bundle, force)?;
    println!("wrote {0}/ca.crt, {0}/tls.crt, {0}/tls.key", out.display());
    Ok(())
}

//! Writes test certificates for the TLS benchmarks and by-hand runs: a CA (`ca.pem`), and a
//! server certificate it signed for `127.0.0.1`, `::1` and `localhost` (`cert.pem`, the
//! server's then the CA's) with its private key (`key.pem`, PKCS#8). For tests and
//! benchmarks on this machine only: the keys are new each run and written unencrypted.
//!
//! ```text
//! cargo run --release -p fibra-bench --bin gencert -- --dir /tmp/certs
//! cargo run --release --example chatter -- --tls-cert /tmp/certs/cert.pem --tls-key /tmp/certs/key.pem
//! target/release/loadgen chat --addr 127.0.0.1:1983 --tls-ca /tmp/certs/ca.pem
//! ```

#[path = "../../../examples/shared/cli.rs"]
mod cli;

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

const HELP: &str = "\
gencert: a benchmark tool (fibra-bench) that writes a test CA and a server certificate it
signed for 127.0.0.1, ::1 and localhost: ca.pem, cert.pem (the chain) and key.pem.

usage: gencert [--dir DIR] [--name NAME]...
  --dir DIR    where to write them (default .; made if missing)
  --name NAME  another name or IP address for the server certificate (repeatable)";

fn main() -> Result<(), cli::Failure> {
    let mut dir = ".".to_owned();
    let mut names = vec![
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        "localhost".to_owned(),
    ];
    let mut args = cli::Args::new("gencert", HELP);
    while let Some(flag) = args.next_flag() {
        let f = flag.as_str();
        match f {
            "--dir" => dir = args.value(f),
            "--name" => names.push(args.value(f)),
            _ => args.unknown(f),
        }
    }
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir)?;
    let (ca, cert, key) = generate(names).map_err(|e| format!("making the certificates: {e}"))?;
    std::fs::write(dir.join("ca.pem"), ca)?;
    std::fs::write(dir.join("cert.pem"), cert)?;
    std::fs::write(dir.join("key.pem"), key)?;
    eprintln!(
        "wrote ca.pem, cert.pem and key.pem in {}",
        dir.canonicalize()?.display()
    );
    Ok(())
}

/// The CA's certificate, the server's chain and the server's key, as PEM.
fn generate(names: Vec<String>) -> Result<(String, String, String), rcgen::Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "fibra test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let mut server = CertificateParams::new(names)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "fibra test server");
    let key = KeyPair::generate()?;
    let cert = server.signed_by(&key, &ca)?;
    Ok((ca.pem(), cert.pem() + &ca.pem(), key.serialize_pem()))
}

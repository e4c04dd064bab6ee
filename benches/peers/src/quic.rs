//! quinn on 127.0.0.1 with a self-signed certificate the client trusts: TLS 1.3 with
//! quinn's defaults (rustls, ring), the configuration a quinn user starts from.

use std::net::SocketAddr;
use std::sync::Arc;

use quinn::{ClientConfig, Endpoint, ServerConfig};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

/// A server configuration and the client configuration that trusts it.
pub fn configs() -> (ServerConfig, ClientConfig) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    let der: CertificateDer<'static> = cert.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    let server =
        ServerConfig::with_single_cert(vec![der.clone()], key.into()).expect("server certificate");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).expect("trust the certificate");
    let client = ClientConfig::with_root_certificates(Arc::new(roots)).expect("client config");
    (server, client)
}

/// A server endpoint on 127.0.0.1; call it inside the tokio runtime that is to drive it.
pub fn server_endpoint(config: ServerConfig) -> Endpoint {
    Endpoint::server(config, loopback()).expect("server endpoint")
}

/// A client endpoint on 127.0.0.1 using `config`; call it inside the tokio runtime that is to
/// drive it.
pub fn client_endpoint(config: ClientConfig) -> Endpoint {
    let mut client = Endpoint::client(loopback()).expect("client endpoint");
    client.set_default_client_config(config);
    client
}

/// A tokio runtime on the calling thread only: the program's threads are laid out as
/// compare's (a server thread, a client thread), not left to a work-stealing pool.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

// Tokio + tokio-rustls peer for weft's TLS benchmark (issue 16).
// Usage: tokio_tls_peer tls_echo_server <workers> --port P --cert FILE --key FILE [--current-thread]
// The echo server of bench/peers/tokio over rustls with its defaults: each
// connection completes the handshake (the accept future), then echoes until
// the client closes. Runs until killed.
use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::{Certificate, PrivateKey, ServerConfig};
use tokio_rustls::TlsAcceptor;

fn load_config(cert: &str, key: &str) -> ServerConfig {
    let certs: Vec<Certificate> =
        rustls_pemfile::certs(&mut BufReader::new(File::open(cert).expect("cert file")))
            .expect("certificates")
            .into_iter()
            .map(Certificate)
            .collect();
    // PKCS#8, as `openssl req -newkey ec -nodes` writes it (bench/run).
    let mut keys = rustls_pemfile::pkcs8_private_keys(&mut BufReader::new(
        File::open(key).expect("key file"),
    ))
    .expect("private key");
    assert!(!keys.is_empty(), "no PKCS#8 private key in {}", key);
    ServerConfig::builder()
        .with_safe_defaults()
        .with_no_client_auth()
        .with_single_cert(certs, PrivateKey(keys.remove(0)))
        .expect("server config")
}

async fn tls_echo_server(port: u16, config: ServerConfig) {
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    println!("listening port={} (tls)", port);
    loop {
        let (sock, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => continue,
        };
        let _ = sock.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let mut tls = match acceptor.accept(sock).await {
                Ok(t) => t,
                Err(_) => return,
            };
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if tls.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            let _ = tls.shutdown().await;
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 || args[1] != "tls_echo_server" {
        eprintln!(
            "usage: {} tls_echo_server <workers> --port P --cert FILE --key FILE [--current-thread]",
            args[0]
        );
        std::process::exit(2);
    }
    let workers: usize = args[2].parse().expect("workers");
    let (mut port, mut cert, mut key, mut current_thread) = (0u16, String::new(), String::new(), false);
    let mut i = 3;
    while i < args.len() {
        match args[i].as_str() {
            "--port" => {
                i += 1;
                port = args[i].parse().expect("port");
            }
            "--cert" => {
                i += 1;
                cert = args[i].clone();
            }
            "--key" => {
                i += 1;
                key = args[i].clone();
            }
            "--current-thread" => current_thread = true,
            a => {
                eprintln!("unknown argument {}", a);
                std::process::exit(2);
            }
        }
        i += 1;
    }
    let config = load_config(&cert, &key);
    let rt = if current_thread {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()
    }
    .expect("runtime");
    rt.block_on(async move { tokio::spawn(tls_echo_server(port, config)).await.unwrap() });
}

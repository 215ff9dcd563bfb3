//! A man in the middle for the trust tests: a relay that passes what the
//! client sends unchanged and rewrites what the server answers.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;

/// A relay on 127.0.0.1 to `upstream`, for at most 64 clients: each gets
/// its own connection to `upstream`; what it sends passes unchanged (its
/// close is passed on as a shutdown of the write side), and the answers go
/// through `answers(server, client)`. Returns the relay's address.
pub fn answer_rewriting_relay(
    upstream: String,
    answers: fn(TcpStream, TcpStream) -> std::io::Result<()>,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for client in listener.incoming().take(64) {
            let Ok(client) = client else { return };
            let upstream = upstream.clone();
            thread::spawn(move || {
                let server = TcpStream::connect(&upstream).unwrap();
                let mut to_server = server.try_clone().unwrap();
                let mut from_client = client.try_clone().unwrap();
                thread::spawn(move || {
                    let _ = std::io::copy(&mut from_client, &mut to_server);
                    let _ = to_server.shutdown(Shutdown::Write);
                });
                let _ = answers(server, client);
            });
        }
    });
    addr
}

//! Free local ports that stay free while a process restarts on them.
//!
//! A test that kills a server and starts it again on the same port (the crash campaign, a broker
//! restart) leaves that port unbound in between. A port the kernel handed out for `bind(0)` comes
//! from its ephemeral range — the range it also picks the local port of every *outgoing*
//! connection from — so in that gap a client connection (to PostgreSQL, the broker, another
//! service) can take it, and the restarted server cannot listen ("Address already in use") for as
//! long as that connection lives. Ports below the ephemeral range are never chosen for outgoing
//! connections, so these are picked from there.

use std::net::TcpListener;

use rand::Rng;

/// Lowest port picked: above the well-known and most registered service ports.
const LOWEST: u16 = 10_000;
/// Linux's default ephemeral range starts here; used where the kernel's setting cannot be read.
const DEFAULT_EPHEMERAL_START: u16 = 32_768;
const ATTEMPTS: usize = 10_000;

/// `N` distinct ports on 127.0.0.1 that were free a moment ago and that the kernel will not give
/// to outgoing connections. Every listener is held until all are picked, so no port is returned
/// twice; a random pick keeps concurrent test processes from colliding. An error only when the
/// whole range is in use.
pub fn restartable_ports<const N: usize>() -> std::io::Result<[u16; N]> {
    let highest = ephemeral_start().saturating_sub(1);
    let mut held: Vec<(u16, TcpListener)> = Vec::with_capacity(N);
    if highest <= LOWEST {
        // The ephemeral range covers everything: nothing better than the kernel's pick.
        for _ in 0..N {
            let listener = bind(0)?;
            held.push((listener.local_addr()?.port(), listener));
        }
    } else {
        let mut rng = rand::thread_rng();
        for _ in 0..ATTEMPTS {
            if held.len() == N {
                break;
            }
            let port = rng.gen_range(LOWEST..=highest);
            if held.iter().any(|(taken, _)| *taken == port) {
                continue;
            }
            if let Ok(listener) = bind(port) {
                held.push((port, listener));
            }
        }
    }
    let ports: Vec<u16> = held.iter().map(|(port, _)| *port).collect();
    ports.try_into().map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::AddrInUse, format!("no {N} free ports in {LOWEST}..={highest}"))
    })
}

fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port))
}

/// The first port of the kernel's ephemeral range (`net.ipv4.ip_local_port_range`).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_START)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports = restartable_ports::<8>().unwrap();
        let start = ephemeral_start();
        for (i, port) in ports.iter().enumerate() {
            assert!(*port >= LOWEST && *port < start, "port {port} outside {LOWEST}..{start}");
            assert!(!ports[..i].contains(port), "port {port} returned twice");
            bind(*port).unwrap_or_else(|e| panic!("port {port} was returned but cannot be bound: {e}"));
        }
    }
}

//! Member health for the daemon: the kernel's link notifications, and the probes through every
//! member of a group with a `health_check:` (see `datapath::probe`).

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::MissedTickBehavior;

use crate::datapath::{self, Location};

/// Wakes the watcher whenever the kernel reports a link change in this namespace, so a member
/// whose link goes down fails over at once instead of at the next poll. Without the
/// subscription (an error is logged once) the poll still notices.
pub(super) async fn link_events(wake: Arc<tokio::sync::Notify>) {
    // SAFETY: the OwnedFd is moved into the AsyncFd and stays open, the same descriptor, for as
    // long as the AsyncFd lives.
    let registered = datapath::netlink::link_events()
        .and_then(|fd| unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|e| e.into_parts().1));
    let fd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            log::warn!("link notifications unavailable, polling only: {e}");
            return;
        }
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Ok(mut ready) = fd.readable().await else { return };
        let mut any = false;
        loop {
            match rustix::net::recv(fd.get_ref(), &mut buf[..], rustix::net::RecvFlags::empty()) {
                Ok((n, _)) if n > 0 => {
                    any = true;
                    continue;
                }
                // Drained (EAGAIN), or an overrun (ENOBUFS): either way there was news.
                r => any |= r.is_err_and(|e| e == rustix::io::Errno::NOBUFS),
            }
            break;
        }
        ready.clear_ready();
        if any {
            wake.notify_one();
        }
    }
}

/// Probes every member of every group with a `health_check:` (see `datapath::probe`) and keeps
/// `down` to the members that stopped forwarding, waking the watcher when it changes. Targets
/// are read again whenever the live generation changes.
pub(super) async fn probe_loop(loc: Arc<Location>, down: Arc<Mutex<BTreeSet<String>>>, wake: Arc<tokio::sync::Notify>) {
    use datapath::probe::{Change, Sender, Target, Tracker};
    let sender = match Sender::new() {
        Ok(s) => s,
        Err(e) => {
            log::error!("health probes disabled (members fail over on link state only): {e}; the probes need CAP_NET_RAW");
            return;
        }
    };
    let mut generation = None;
    let mut targets: Vec<(Target, Tracker, tokio::time::Instant)> = Vec::new();
    let mut seq = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let l = loc.clone();
        let now_gen = tokio::task::spawn_blocking(move || datapath::maps::Maps::open(&l).and_then(|m| m.meta()).map(|m| m.generation)).await;
        let now_gen = now_gen.ok().and_then(Result::ok);
        if now_gen != generation {
            generation = now_gen;
            let l = loc.clone();
            let fresh = tokio::task::spawn_blocking(move || {
                datapath::with_state(&l, datapath::probe::targets).ok().flatten().unwrap_or_default()
            })
            .await
            .unwrap_or_default();
            // Members probed before keep their history; new ones start up, with a fresh probe.
            let mut next = Vec::new();
            for t in fresh {
                match targets.iter().position(|(o, _, _)| o.id == t.id && o.ifindex == t.ifindex) {
                    Some(i) => {
                        let (_, tr, due) = targets.swap_remove(i);
                        next.push((t, tr, due));
                    }
                    None => next.push((t, Tracker::new(0), tokio::time::Instant::now())),
                }
            }
            targets = next;
            if let Ok(mut d) = down.lock() {
                d.retain(|pp| targets.iter().any(|(t, tr, _)| &t.port_pair == pp && !tr.up));
            }
        }
        let now = tokio::time::Instant::now();
        if !targets.iter().any(|(_, _, due)| *due <= now) {
            continue;
        }
        let ids: Vec<u32> = targets.iter().map(|(t, _, _)| t.id).collect();
        let l = loc.clone();
        let back = tokio::task::spawn_blocking(move || datapath::probe::returned(&l, &ids)).await;
        let Ok(Ok(back)) = back else { continue };
        let mut changed = false;
        for (t, tr, due) in &mut targets {
            if *due > now {
                continue;
            }
            let got = back.get(&t.id).copied().unwrap_or(0);
            match tr.observe(got, &t.check) {
                Some(Change::Down) => {
                    log::warn!("{}: {} health probes in a row not back; taking it out of its group", t.port_pair, t.check.failures);
                    changed |= down.lock().is_ok_and(|mut d| d.insert(t.port_pair.clone()));
                }
                Some(Change::Up) => {
                    log::warn!("{}: {} health probes in a row back; it serves again", t.port_pair, t.check.recoveries);
                    changed |= down.lock().is_ok_and(|mut d| d.remove(&t.port_pair));
                }
                None => {}
            }
            seq += 1;
            tr.sent = seq;
            if let Err(e) = sender.send(t.ifindex, &datapath::probe::frame(t, seq)) {
                log::debug!("{}: sending a probe: {e}", t.port_pair);
            }
            *due = now + Duration::from_millis(u64::from(t.check.interval_ms));
        }
        if changed {
            wake.notify_one();
        }
    }
}

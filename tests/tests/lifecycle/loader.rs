//! (b), (e) The loader: killed at any moment while forwarding goes on from the pins, and a
//! second one refused while the first holds the lock; the pin and state directories are private.

use std::{
    fmt::Write as _,
    fs::OpenOptions,
    os::{
        fd::AsRawFd,
        unix::fs::{MetadataExt, PermissionsExt},
    },
    path::Path,
    thread::sleep,
    time::{Duration, Instant},
};

use sfc_tests::{
    Sfc, TopologyConfig,
    process::{Daemon, indent, kill_after},
    rng::Rng,
    scenario::Fixture,
    sfc::diagnostics,
    topology::End,
};

use super::{
    assert_every_datagram_crossed_sf3_once, chain_files, context, generation, ms, settled_since,
    sports_on_both_pg1_members, stream,
};

/// (b) The loader may die at any moment. `sfc run` is killed (SIGKILL) mid-stream: forwarding
/// goes on from the pins (the SFs' counters keep moving) and a new `sfc apply` of the daemon's
/// file adopts the pinned state ("no change"). Then `sfc apply` runs alternating A and B are
/// killed at random moments of their run (`SFC_TEST_SEED` replays the delays); a clean apply
/// succeeds afterwards, a repeat of it says "no change", and over all of it the stream lost
/// nothing and every datagram crossed sf3 exactly once.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn killing_the_loader_loses_nothing() {
    const KILLED_APPLIES: usize = 12;
    let (mut rng, seed) = Rng::from_env_or_clock();
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let sfc = Sfc::for_topology(&fx.topo);
    let (a, b) = chain_files(&fx);
    let log = fx.dir.path().join("daemon.log");
    let mut daemon = Daemon::start(
        &sfc,
        &["-f", &a.to_string_lossy(), "--drain-timeout", "0"],
        &log,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let sports = sports_on_both_pg1_members(&fx, &sfc);

    let before = fx.topo.counters().unwrap();
    let stream = stream(&fx, sports);
    sleep(Duration::from_millis(500));
    let at_kill = fx.topo.counters().unwrap();
    assert!(
        daemon.kill().unwrap(),
        "the daemon had exited before the kill:\n{}",
        daemon.log()
    );
    let killed_at = Instant::now();
    sleep(Duration::from_millis(500));
    let after_kill = fx.topo.counters().unwrap().since(&at_kill);
    for end in [End::SfIn(1), End::SfIn(2), End::SfOut(3)] {
        let moved = after_kill.get(end);
        assert!(
            moved.rx_packets + moved.tx_packets > 100,
            "{end} stood still in the 500 ms after the daemon was killed:\n{after_kill}\ndaemon log:\n{}\n{}",
            daemon.log(),
            diagnostics(&fx.topo)
        );
    }
    assert!(
        sfc.pin_dir().join("prog_tc_ingress").exists(),
        "the pins went with the daemon"
    );
    let adopt = sfc.apply_now(&a);
    assert!(
        adopt.contains("no change"),
        "a new loader must adopt the state the killed daemon left:\n{adopt}"
    );

    // A clean apply's duration, to spread the kills over a whole run.
    let t = Instant::now();
    let out = sfc.apply_now(&b);
    let clean = t.elapsed();
    assert!(generation(&out).is_some(), "{out}");
    let mut runs = Vec::new();
    for k in 0..KILLED_APPLIES {
        let file = if k % 2 == 0 { &a } else { &b };
        let delay = rng.duration_below(clean + clean / 4);
        let run = kill_after(
            &sfc,
            &[
                "apply",
                "-f",
                &file.to_string_lossy(),
                "--drain-timeout",
                "0",
            ],
            delay,
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        runs.push(run);
        sleep(Duration::from_millis(20));
    }
    let mut runs_text = String::new();
    for r in &runs {
        let _ = writeln!(runs_text, "  {r}");
    }
    // A clean apply of A succeeds whatever the killed runs left (a new generation, or "no
    // change" when the last run to get that far installed A); a repeat of it changes nothing.
    let clean_a = sfc
        .try_run(&["apply", "-f", &a.to_string_lossy(), "--drain-timeout", "0"])
        .unwrap_or_else(|e| {
            panic!("clean apply after the kills: {e:#}\nkilled runs (seed {seed}):\n{runs_text}")
        });
    let again = sfc.apply_now(&a);
    sleep(Duration::from_millis(300));
    let report = stream.finish().unwrap_or_else(|e| panic!("{e:#}"));
    let (delta, stats) = settled_since(&fx, &sfc, &before);
    let ctx = format!(
        "{}\nkilled apply runs (SFC_TEST_SEED={seed}):\n{runs_text}clean apply \
         A:\n{}repeat:\n{}daemon log:\n{}",
        context(
            "daemon killed, then applies killed",
            &fx,
            &report,
            &delta,
            &stats
        ),
        indent(&clean_a),
        indent(&again),
        indent(&daemon.log())
    );
    assert!(
        again.contains("no change"),
        "the same file again must be no change: {ctx}"
    );
    assert_every_datagram_crossed_sf3_once(&report, &delta, &stats, &ctx);

    let killed = runs.iter().filter(|r| r.killed).count();
    println!(
        "killing_the_loader_loses_nothing: daemon SIGKILLed {:.0} ms into the stream; clean \
         apply {:.1} ms; {killed} of {KILLED_APPLIES} applies killed mid-run (delays {:?} ms, \
         seed {seed}); {report}",
        report.ms(killed_at),
        ms(clean),
        runs.iter()
            .map(|r| format!("{:.0}{}", ms(r.delay), if r.killed { "k" } else { "" }))
            .collect::<Vec<_>>(),
    );
}

/// Everything `sfc apply` could change, read back: the saved state, the pin directory listing
/// and every configuration map, decoded.
fn installed(sfc: &Sfc<'_>) -> String {
    let mut out = std::fs::read_to_string(sfc.state_dir().join("state.json"))
        .unwrap_or_else(|e| format!("(state.json: {e})"));
    let mut pins: Vec<String> = std::fs::read_dir(sfc.pin_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pins.sort();
    let _ = writeln!(out, "\npins: {pins:?}");
    for map in [
        "SFC_META",
        "SFC_IFACES_V4",
        "SFC_IFACES_DIR",
        "SFC_CLS",
        "SFC_CLS_RES",
        "SFC_CHAINS",
        "SFC_GROUPS",
        "SFC_LB",
        "SFC_PORT_PAIRS2",
    ] {
        let _ = writeln!(out, "{map}: {}", sfc.run(&["map", "dump", map, "--json"]));
    }
    out
}

fn assert_private_dir(dir: &Path) {
    let meta = std::fs::metadata(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert!(meta.is_dir(), "{} is not a directory", dir.display());
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o700,
        "{} mode {:o}",
        dir.display(),
        meta.permissions().mode()
    );
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "{} owner", dir.display());
}

/// (e) While another process holds the datapath's lock, `sfc apply` and `sfc run` are refused
/// with "another sfc is changing this datapath" and change nothing; once it is released the
/// same apply goes through. The pin and state directories are mode 0700, owned by root.
#[test]
fn second_loader_is_refused() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let sfc = Sfc::for_topology(&fx.topo);
    let (a, b) = chain_files(&fx);
    sfc.apply(&a);
    assert_private_dir(sfc.pin_dir());
    assert_private_dir(&sfc.state_dir());

    let lock_path = sfc.state_dir().join("lock");
    let lock = OpenOptions::new().write(true).open(&lock_path).unwrap();
    // SAFETY: flock on an fd we own; released when `lock` is closed.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(
        rc,
        0,
        "flock {}: {}",
        lock_path.display(),
        std::io::Error::last_os_error()
    );

    let before = installed(&sfc);
    let refused = sfc
        .try_run(&["apply", "-f", &b.to_string_lossy()])
        .expect_err("sfc apply must be refused while the lock is held");
    let refused = format!("{refused:#}");
    assert!(
        refused.contains("another sfc is changing this datapath"),
        "{refused}"
    );
    let log = fx.dir.path().join("daemon.log");
    let mut daemon = Daemon::spawn(&sfc, &["-f", &b.to_string_lossy()], &log).unwrap();
    let status = daemon.wait_exit(Duration::from_secs(5)).unwrap();
    assert!(
        status.is_some_and(|s| !s.success()),
        "sfc run must fail while the lock is held ({status:?}):\n{}",
        daemon.log()
    );
    assert!(
        daemon
            .log()
            .contains("another sfc is changing this datapath"),
        "{}",
        daemon.log()
    );
    let after = installed(&sfc);
    assert!(
        before == after,
        "a refused loader changed the datapath:\n{}",
        sfc_tests::chain::line_diff(&before, &after, 2)
    );

    drop(lock);
    let out = sfc.apply(&b);
    assert!(generation(&out).is_some(), "{out}");
    println!(
        "second_loader_is_refused: refused with: {}",
        refused.lines().last().unwrap_or("")
    );
}

/// A datapath whose pinned program does not use this sfc's maps (what another sfc version,
/// whose maps have other names or layouts, leaves): `sfc apply` refuses, says what to do, and
/// changes nothing; `sfc down` and an apply bring it back. Simulated by unpinning a map the
/// program uses: the next apply would create a fresh one the program never reads.
#[test]
fn a_datapath_of_another_version_is_refused_not_half_updated() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let sfc = Sfc::for_topology(&fx.topo);
    let (a, _) = chain_files(&fx);
    sfc.apply(&a);
    std::fs::remove_file(sfc.pin_dir().join("SFC_GROUPS_V2")).unwrap();
    let e = sfc.try_run(&["apply", "-f", &a.to_string_lossy()]).expect_err("refused");
    let e = format!("{e:#}");
    assert!(e.contains("installed by another version of sfc") && e.contains("sfc down"), "{e}");
    sfc.run(&["down"]);
    sfc.apply(&a);
    assert!(sfc.run(&["status"]).contains("pc1"), "applied again after sfc down");
}

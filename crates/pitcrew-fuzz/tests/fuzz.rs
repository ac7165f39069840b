//! The fixed-size run `cargo test` (and so `cargo xtask test`) does: a few thousand inputs per
//! target from a fixed seed, no crash; `cargo xtask fuzz --seconds N` goes on for longer.

use pitcrew_fuzz::{run, Budget};

#[test]
fn a_fixed_number_of_cases_per_target_find_no_crash() {
    let report = run(Budget::Cases(3000), 0x5eed);
    for crash in &report.crashes {
        eprintln!(
            "{}: {} on {:?}",
            crash.target,
            crash.what,
            String::from_utf8_lossy(&crash.input)
        );
    }
    assert!(
        report.crashes.is_empty(),
        "{} crashes",
        report.crashes.len()
    );
    assert!(report.targets.iter().all(|t| t.1 == 3000));
    // Where systemd-escape is installed (CI installs systemd), escaping was checked against it.
    if std::process::Command::new("systemd-escape")
        .arg("x")
        .output()
        .is_ok()
    {
        assert!(
            report.escape_oracle.unwrap_or(0) > 1000,
            "{:?}",
            report.escape_oracle
        );
    }
}

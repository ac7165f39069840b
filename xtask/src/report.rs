//! The results protocol the guest speaks on ttyS1, and what the host makes of it:
//!   RESULT <scenario> PASS|FAIL <reason>
//!   BENCH <raw|pitcrew|against>_<detach|reattach> <ms>   (or FAIL <reason> instead of <ms>)
//!   BENCH pitcrew_<true|version|helper|status|version_aslr> <ms>   (what pitcrew's own share is made of)
//!   DONE

use std::collections::BTreeMap;

#[derive(Debug, PartialEq)]
pub struct Verdict {
    pub pass: bool,
    pub reason: String,
}

pub fn parse_result(line: &str) -> Option<(String, Verdict)> {
    let rest = line.trim().strip_prefix("RESULT ")?;
    let mut it = rest.splitn(3, ' ');
    let name = it.next()?.to_string();
    let pass = match it.next()? {
        "PASS" => true,
        "FAIL" => false,
        _ => return None,
    };
    let reason = it.next().unwrap_or("").trim().to_string();
    Some((name, Verdict { pass, reason }))
}

/// Per measurement, the samples in ms, or the reason it could not be measured.
#[derive(Default)]
pub struct Bench {
    samples: BTreeMap<String, Vec<f64>>,
    failures: BTreeMap<String, String>,
}

impl Bench {
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("BENCH ") else {
            return;
        };
        let Some((key, value)) = rest.split_once(' ') else {
            return;
        };
        if let Some(reason) = value.strip_prefix("FAIL") {
            self.failures
                .insert(key.to_string(), reason.trim().to_string());
        } else if let Ok(ms) = value.trim().parse::<f64>() {
            self.samples.entry(key.to_string()).or_default().push(ms);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.failures.is_empty()
    }

    fn median(&self, key: &str) -> Option<f64> {
        let mut v = self.samples.get(key)?.clone();
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    }

    fn cell(&self, key: &str) -> String {
        match (self.median(key), self.failures.get(key)) {
            (_, Some(_)) => "failed".into(),
            (Some(ms), None) => format!("{ms:.1}"),
            (None, None) => "-".into(),
        }
    }

    /// The timing table: median of the rounds, raw sysfs floor vs pitcrew, and the ratio.
    pub fn table(&self) -> String {
        let rounds = self.samples.values().map(Vec::len).max().unwrap_or(0);
        let mut s = format!(
            "timing (same boot, TCG, median of {rounds} round(s))\n\
             {:<10} {:>16} {:>14} {:>8}\n",
            "step", "kernel ops (ms)", "pitcrew (ms)", "ratio"
        );
        for (step, who, label) in [
            ("detach", "pitcrew", "detach"),
            ("reattach", "pitcrew", "reattach"),
            // `--against`: the other build, in the rounds between.
            ("detach", "against", "detach (--against)"),
            ("reattach", "against", "reattach (--against)"),
        ] {
            let (raw, pc) = (format!("raw_{step}"), format!("{who}_{step}"));
            if who == "against" && self.cell(&pc) == "-" {
                continue;
            }
            let ratio = match (self.median(&raw), self.median(&pc), self.failures.get(&pc)) {
                (Some(r), Some(p), None) if r > 0.0 => format!("{:.2}x", p / r),
                _ => "-".into(),
            };
            s += &format!(
                "{label:<10} {:>16} {:>14} {ratio:>8}\n",
                self.cell(&raw),
                self.cell(&pc)
            );
        }
        if let (Some(any), Some(start), Some(read)) = (
            self.median("pitcrew_true"),
            self.median("pitcrew_version"),
            self.median("pitcrew_status"),
        ) {
            s += &format!(
                "pitcrew's own share: starting a process {any:.1} ms (busybox true), starting \
                 pitcrew {start:.1} ms (pitcrew --version), reading the host {read:.1} ms \
                 (pitcrew status)\n"
            );
        }
        // The write helper's start without clap or logging: what a handover's second process costs.
        if let Some(helper) = self.median("pitcrew_helper") {
            s += &format!(
                "starting the write helper {helper:.1} ms (pitcrew __write, nothing to write)\n"
            );
        }
        // The rounds run with address randomization off (see bench.sh): what QEMU's translator
        // adds to each start of pitcrew when it is on.
        if let (Some(start), Some(random)) = (
            self.median("pitcrew_version"),
            self.median("pitcrew_version_aslr"),
        ) {
            s += &format!(
                "the rounds ran with address randomization off; with it on, starting pitcrew \
                 takes {random:.1} ms instead of {start:.1} (QEMU translates its code anew at \
                 each start)\n"
            );
        }
        for (key, reason) in &self.failures {
            s += &format!("  {key} failed: {reason}\n");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_results() {
        let (n, v) = parse_result("RESULT detach PASS both on vfio-pci\r").unwrap();
        assert_eq!(n, "detach");
        assert!(v.pass);
        assert_eq!(v.reason, "both on vfio-pci");
        assert!(!parse_result("RESULT x FAIL").unwrap().1.pass);
        assert!(parse_result("RESULT x MAYBE y").is_none());
        assert!(parse_result("hello").is_none());
    }

    #[test]
    fn bench_table_has_ratio_and_failures() {
        let mut b = Bench::default();
        for l in [
            "BENCH raw_detach 10",
            "BENCH raw_detach 30",
            "BENCH raw_detach 20",
            "BENCH pitcrew_detach 40",
            "BENCH raw_reattach 5",
            "BENCH pitcrew_reattach FAIL exit 101",
        ] {
            b.add_line(l);
        }
        let t = b.table();
        assert!(t.contains("20.0"), "{t}");
        assert!(t.contains("2.00x"), "{t}");
        assert!(t.contains("pitcrew_reattach failed: exit 101"), "{t}");
    }
}

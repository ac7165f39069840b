//! Bad input refused at the command line: names, addresses, roots and options.

use super::Catalog;
use pitcrew::{Bdf, Error, Failed, Input, VmName};
use std::path::{Path, PathBuf};

#[test]
fn input_refusals() {
    let mut c = Catalog::default();
    let root = Path::new("/");
    for (name, vm) in [
        ("empty", ""),
        ("too long", &"n".repeat(300)),
        ("escaped past the unit name limit", &"é".repeat(60)),
        ("with a slash", "a/b"),
        ("with a control character", "a\u{7}b"),
    ] {
        c.line(
            &format!("VM name {name}"),
            root,
            &VmName::parse(vm).unwrap_err().to_string(),
        );
    }
    for address in ["1:0.0", "zz:00.0", "0000:01:00.0; rm -rf /"] {
        c.line(
            &format!("address {address:?}"),
            root,
            &address.parse::<Bdf>().unwrap_err().to_string(),
        );
    }
    let errors: Vec<(&str, Error)> = vec![
        (
            "a handover of a staged tree",
            Input::StagedRoot(PathBuf::from("/tmp/staged")).into(),
        ),
        (
            "a root that is no directory",
            Input::BadRoot {
                root: PathBuf::from("/dev/null"),
                reason: "a character device, not a directory; give a directory (a staged \
                         system tree) or /"
                    .into(),
            }
            .into(),
        ),
        (
            "a timeout that is no duration",
            Input::TermTimeout(f64::NAN).into(),
        ),
        ("--force of a detach", Input::ForceDetach.into()),
        ("doctor found failures", Failed::Doctor(2).into()),
    ];
    for (name, error) in errors {
        c.line(name, root, &error.to_string());
    }
    insta::assert_snapshot!("input", c.render());
}

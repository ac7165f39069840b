//! `pitcrew doctor`: the report on stdout, exit 1 when a check failed.

use crate::doctor::{self, Level};
use crate::error::{Error, Failed, Input};
use crate::host::Host;
use crate::vm::VmName;

pub(super) fn run(host: &Host, json: bool, vm: Option<&str>) -> Result<(), Error> {
    let vm = vm.map(VmName::parse).transpose().map_err(Input::from)?;
    let report = doctor::run(host, vm.as_ref());
    let text = if json {
        serde_json::to_string_pretty(&report).expect("the report serializes") + "\n"
    } else {
        report.to_string()
    };
    super::print_out(&text)?;
    match report.count(Level::Fail) {
        0 => Ok(()),
        n => Err(Failed::Doctor(n).into()),
    }
}

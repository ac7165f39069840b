//! The engine's entry point: read the host, plan, execute with rollback.
//! (Being written; the signature below is what the CLI, the hook and the unit call.)

use crate::bdf::Bdf;
use crate::host::Host;
use crate::policy::Policy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Functions on vfio-pci, lent to a VM.
    Vfio,
    /// Functions back on their host drivers.
    Host,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub target: Target,
    /// As given; the engine widens GPUs to their whole IOMMU group.
    pub devices: Vec<Bdf>,
    pub policy: Policy,
    /// The VM the devices are lent to, for the state record and messages.
    pub owner: Option<String>,
    pub dry_run: bool,
}

/// Runs a request; `Err` means nothing is left changed (rolled back) or nothing was started.
pub fn run(host: &Host, request: &Request) -> Result<(), crate::Error> {
    let _ = (host, request);
    todo!("engine")
}

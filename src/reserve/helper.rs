//! The helper process (`pitcrew reserve-audio`), run as the user whose session bus the sound
//! server is on: it takes the card's reservation and keeps it until the function is on vfio-pci.
//!
//! The protocol (org.freedesktop.ReserveDevice1, as JACK, PulseAudio and WirePlumber speak it):
//! request `org.freedesktop.ReserveDevice1.Audio<N>` without queueing; if another peer owns it,
//! call `RequestRelease(priority)` on that owner's `/org/freedesktop/ReserveDevice1/Audio<N>`:
//! an owner that grants it closes the card and returns true; then request the name again,
//! replacing. While we own it we answer `false` to anyone asking us to release it.

use crate::bdf::Bdf;
use crate::host::{pci, Host};
use crate::wait;
use std::io::Write;
use std::time::Duration;
use zbus::fdo::RequestNameFlags;

/// Above JACK's 10 and PulseAudio's 0: WirePlumber grants a release to any request not far
/// below its own priority.
pub const PRIORITY: i32 = 100;
const INTERFACE: &str = "org.freedesktop.ReserveDevice1";
/// How long the owner may take to close the card before answering.
const RELEASE_CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Args {
    pub card: u32,
    /// The session bus, as in DBUS_SESSION_BUS_ADDRESS.
    pub bus: String,
    /// Let go once this function is on vfio-pci ...
    pub until_vfio: Bdf,
    /// ... or after this long at the most (the handover failed and was rolled back).
    pub hold_at_most: Duration,
}

/// The object we serve while we own the name.
struct Reservation {
    card: u32,
}

#[zbus::interface(name = "org.freedesktop.ReserveDevice1")]
impl Reservation {
    /// Never while the card is on its way to a VM.
    fn request_release(&self, _priority: i32) -> bool {
        false
    }

    #[zbus(property)]
    fn priority(&self) -> i32 {
        PRIORITY
    }

    #[zbus(property)]
    fn application_name(&self) -> String {
        "GPU Pit Crew (lending the card to a VM)".into()
    }

    #[zbus(property)]
    fn application_device_name(&self) -> String {
        format!("ALSA card {}", self.card)
    }
}

/// Takes the reservation, says on `out` how (`ok ...`) or why not (`err ...`), then holds it.
pub fn run(host: &Host, args: &Args, out: &mut dyn Write) -> i32 {
    let conn = match take(args) {
        Ok((conn, how)) => {
            let _ = writeln!(out, "ok {how}");
            let _ = out.flush();
            conn
        }
        Err(why) => {
            let _ = writeln!(out, "err {why}");
            return 1;
        }
    };
    // Holding the connection holds the name; it goes when the process exits.
    let _ = wait::until(
        &format!("{} to sit on vfio-pci", args.until_vfio),
        args.hold_at_most,
        || pci::driver(host, args.until_vfio).as_deref() == Some(pci::VFIO_DRIVER),
    );
    drop(conn);
    0
}

fn take(args: &Args) -> Result<(zbus::blocking::Connection, String), String> {
    let name = format!("{INTERFACE}.Audio{}", args.card);
    let path = format!("/org/freedesktop/ReserveDevice1/Audio{}", args.card);
    let conn = zbus::blocking::connection::Builder::address(args.bus.as_str())
        .map(|b| b.method_timeout(RELEASE_CALL_TIMEOUT))
        .and_then(|b| b.build())
        .map_err(|e| format!("cannot connect to the session bus {}: {e}", args.bus))?;
    conn.object_server()
        .at(path.as_str(), Reservation { card: args.card })
        .map_err(|e| format!("cannot serve {path}: {e}"))?;
    let no_queue = RequestNameFlags::DoNotQueue.into();
    match conn.request_name_with_flags(name.as_str(), no_queue) {
        Ok(_) => {
            return Ok((
                conn,
                format!("{name} was free: nobody had reserved the card"),
            ))
        }
        Err(zbus::Error::NameTaken) => {}
        Err(e) => return Err(format!("cannot request {name}: {e}")),
    }
    let dbus = zbus::blocking::fdo::DBusProxy::new(&conn)
        .map_err(|e| format!("cannot talk to the bus: {e}"))?;
    let owner = dbus
        .get_name_owner(name.as_str().try_into().map_err(|e| format!("{e}"))?)
        .map_err(|e| format!("cannot find the owner of {name}: {e}"))?;
    let app = conn
        .call_method(
            Some(owner.as_str()),
            path.as_str(),
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &(INTERFACE, "ApplicationName"),
        )
        .ok()
        .and_then(|reply| {
            reply
                .body()
                .deserialize::<zbus::zvariant::OwnedValue>()
                .ok()
        })
        .and_then(|v| String::try_from(v).ok())
        .unwrap_or_else(|| owner.to_string());
    let granted: bool = conn
        .call_method(
            Some(owner.as_str()),
            path.as_str(),
            Some(INTERFACE),
            "RequestRelease",
            &(PRIORITY,),
        )
        .and_then(|reply| reply.body().deserialize())
        .map_err(|e| format!("{app} ({owner}) did not answer RequestRelease on {path}: {e}"))?;
    if !granted {
        return Err(format!("{app} ({owner}) refused to release {name}"));
    }
    let replace = RequestNameFlags::DoNotQueue | RequestNameFlags::ReplaceExisting;
    conn.request_name_with_flags(name.as_str(), replace)
        .map_err(|e| format!("{app} released the card but {name} stays taken: {e}"))?;
    Ok((conn, format!("{app} released the card and {name} is ours")))
}

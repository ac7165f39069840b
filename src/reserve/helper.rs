//! The helper process (`pitcrew reserve-audio`), run as the user whose session bus the sound
//! server is on: it takes the card's reservation and keeps it until the function is on vfio-pci.
//!
//! The protocol (org.freedesktop.ReserveDevice1, as JACK, PulseAudio and WirePlumber speak it):
//! an owner of `org.freedesktop.ReserveDevice1.Audio<N>` is asked to let go with
//! `RequestRelease(priority)` on its `/org/freedesktop/ReserveDevice1/Audio<N>`; one that grants
//! it closes the card, gives up the name and returns true. While we own it we answer `false` to
//! anyone asking us to release it.
//!
//! We stand in the bus's queue for the name before asking, so that the owner's ReleaseName hands
//! it straight to us. The other way (ask, then request the name with REPLACE_EXISTING) leaves
//! the name without an owner for a moment, and WirePlumber (0.4 and 0.5 alike) re-acquires a
//! name it sees vanish at once: its device comes back, opens the card's PCMs to probe them, and
//! is torn down again only when our replacing request lands. The re-check before the unbind then
//! finds it holding the card (testbed/README.md, "The sound server's release").

use crate::bdf::Bdf;
use crate::host::sound::Answer;
use crate::host::{pci, Host};
use crate::wait;
use enumflags2::BitFlags;
use std::io::Write;
use std::time::Duration;
use zbus::fdo::RequestNameReply;

/// Above JACK's 10 and PulseAudio's 0: WirePlumber grants a release to any request not far
/// below its own priority.
pub const PRIORITY: i32 = 100;
const INTERFACE: &str = "org.freedesktop.ReserveDevice1";
/// How long the owner may take to close the card before answering.
const RELEASE_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// What we call ourselves on the bus; a second helper of ours knows the first by it.
const APPLICATION_NAME: &str = "GPU Pit Crew (lending the card to a VM)";

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
        APPLICATION_NAME.into()
    }

    #[zbus(property)]
    fn application_device_name(&self) -> String {
        format!("ALSA card {}", self.card)
    }
}

/// Takes the reservation, says on `out` how (or why not), then holds it while it is ours to hold.
pub fn run(host: &Host, args: &Args, out: &mut dyn Write) -> i32 {
    let (conn, answer) = match take(args) {
        Ok(taken) => taken,
        Err(answer) => (None, answer),
    };
    let _ = writeln!(out, "{}", answer.line());
    let _ = out.flush();
    let Some(conn) = conn else {
        return if answer.is_ours() { 0 } else { 1 };
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

type Taken = (Option<zbus::blocking::Connection>, Answer);

fn failed(why: String) -> Answer {
    Answer::Failed { why }
}

/// The connection that owns the name now (none when another helper of ours has it), and how.
fn take(args: &Args) -> Result<Taken, Answer> {
    let name = format!("{INTERFACE}.Audio{}", args.card);
    let path = format!("/org/freedesktop/ReserveDevice1/Audio{}", args.card);
    let conn = zbus::blocking::connection::Builder::address(args.bus.as_str())
        .map(|b| b.method_timeout(RELEASE_CALL_TIMEOUT))
        .and_then(|b| b.build())
        .map_err(|e| {
            failed(format!(
                "cannot connect to the session bus {}: {e}",
                args.bus
            ))
        })?;
    conn.object_server()
        .at(path.as_str(), Reservation { card: args.card })
        .map_err(|e| failed(format!("cannot serve {path}: {e}")))?;
    // Queued, not DoNotQueue: see the module's comment.
    match conn.request_name_with_flags(name.as_str(), BitFlags::empty()) {
        Ok(RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner) => {
            return Ok((Some(conn), Answer::Free))
        }
        Ok(_) => {}
        Err(e) => return Err(failed(format!("cannot request {name}: {e}"))),
    }
    let dbus = zbus::blocking::fdo::DBusProxy::new(&conn)
        .map_err(|e| failed(format!("cannot talk to the bus: {e}")))?;
    let bus_name: zbus::names::BusName = name
        .as_str()
        .try_into()
        .map_err(|e| failed(format!("{e}")))?;
    let owner = dbus
        .get_name_owner(bus_name.clone())
        .map_err(|e| failed(format!("cannot find the owner of {name}: {e}")))?;
    let app = application_name(&conn, owner.as_str(), &path).unwrap_or_else(|| owner.to_string());
    if app == APPLICATION_NAME {
        return Ok((None, Answer::AlreadyOurs));
    }
    let granted: bool = conn
        .call_method(
            Some(owner.as_str()),
            path.as_str(),
            Some(INTERFACE),
            "RequestRelease",
            &(PRIORITY,),
        )
        .and_then(|reply| reply.body().deserialize())
        .map_err(|e| {
            failed(format!(
                "{app} ({owner}) did not answer RequestRelease on {path}: {e}"
            ))
        })?;
    if !granted {
        return Err(Answer::Refused { app });
    }
    // The owner gave the name up before it answered; the bus passed it to the queue's head.
    let ours = conn.unique_name().map(|n| n.to_string());
    wait::until(
        &format!("the bus to hand {name} over"),
        RELEASE_CALL_TIMEOUT,
        || {
            dbus.get_name_owner(bus_name.clone())
                .is_ok_and(|o| Some(o.to_string()) == ours)
        },
    )
    .map_err(|e| failed(format!("{app} released the card but {e}")))?;
    Ok((Some(conn), Answer::Released { app }))
}

/// The owner's `ApplicationName` property, when it has one.
fn application_name(conn: &zbus::blocking::Connection, owner: &str, path: &str) -> Option<String> {
    let reply = conn
        .call_method(
            Some(owner),
            path,
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &(INTERFACE, "ApplicationName"),
        )
        .ok()?;
    let value = reply
        .body()
        .deserialize::<zbus::zvariant::OwnedValue>()
        .ok()?;
    String::try_from(value).ok()
}

//! The sound servers' side of the device reservation (org.freedesktop.ReserveDevice1), as their
//! sources describe it: WirePlumber and PipeWire close every node of the card, PulseAudio only
//! its PCMs (its control device and jack mixers stay open); other holders do not take part.
//!
//! Tests can make a server misbehave the ways the real ones were seen to: open a node again
//! after it let go (WirePlumber's device re-created while the name changed hands), keep it
//! after a second request, or refuse the release outright.

use std::collections::HashMap;

use crate::model::{Fd, Model};
use crate::SimHost;

#[derive(Default)]
pub(crate) struct SoundServers {
    /// Cards whose reservation a pitcrew helper holds, with the function whose arrival on
    /// vfio-pci ends it.
    reserved: HashMap<u32, String>,
    quirks: HashMap<u32, Quirk>,
}

#[derive(Clone)]
pub(crate) enum Quirk {
    /// After its release, opens `node` again at the next write pitcrew makes; `keeps` says
    /// whether it holds on to it when asked again.
    Reopens {
        node: String,
        armed: bool,
        keeps: bool,
    },
    /// Answers `false` to RequestRelease.
    Refuses,
}

impl SoundServers {
    pub fn add_quirk(&mut self, pid: u32, quirk: Quirk) {
        self.quirks.insert(pid, quirk);
    }

    /// Plays one reservation request for `card`; returns the helper's first line and the pids
    /// whose fds changed.
    pub fn reserve(
        &mut self,
        model: &mut Model,
        card: u32,
        until_vfio: &str,
    ) -> (String, Vec<u32>) {
        self.reserved.retain(|_, bdf| {
            let on_vfio = model
                .devices
                .get(bdf.as_str())
                .and_then(|d| d.driver.as_deref());
            on_vfio != Some("vfio-pci")
        });
        let ours = self.reserved.contains_key(&card);
        let mut changed = Vec::new();
        let mut released = None;
        let mut refused = None;
        for p in model.processes.values_mut().filter(|p| p.alive) {
            let (app, closes): (&str, fn(u32, &str) -> bool) = match p.comm.as_str() {
                "wireplumber" => ("WirePlumber", pitcrew::is_sound_node_of),
                "pipewire" => ("PipeWire", pitcrew::is_sound_node_of),
                "pulseaudio" => ("PulseAudio", |card, node| {
                    pitcrew::is_sound_node_of(card, node) && node.starts_with("/dev/snd/pcmC")
                }),
                _ => continue,
            };
            if !p.fds.iter().any(|fd| closes(card, &fd.target)) {
                continue;
            }
            match self.quirks.get_mut(&p.pid) {
                Some(Quirk::Refuses) if !ours => {
                    refused.get_or_insert(app);
                    continue;
                }
                // Asked again while pitcrew holds the name: it keeps what it reopened.
                Some(Quirk::Reopens { keeps: true, .. }) if ours => continue,
                Some(Quirk::Reopens { armed, .. }) if !ours => *armed = true,
                _ => {}
            }
            p.fds.retain(|fd| !closes(card, &fd.target));
            changed.push(p.pid);
            released.get_or_insert(app);
        }
        let line = match (ours, refused, released) {
            (true, _, _) => "ours".to_string(),
            (false, Some(app), _) => format!("refused {app}"),
            (false, None, Some(app)) => format!("released {app}"),
            (false, None, None) => "free".to_string(),
        };
        if refused.is_none() {
            self.reserved.insert(card, until_vfio.to_string());
        }
        (line, changed)
    }

    /// The servers armed to reopen a node do so now; returns their pids.
    pub fn reopen(&mut self, model: &mut Model) -> Vec<u32> {
        let present = model.nodes();
        let mut reopened = Vec::new();
        for (pid, quirk) in &mut self.quirks {
            let Quirk::Reopens { node, armed, .. } = quirk else {
                continue;
            };
            let Some(p) = model.processes.get_mut(pid).filter(|p| p.alive && *armed) else {
                continue;
            };
            *armed = false;
            if let Some(owner) = present.get(node.as_str()) {
                p.fds.push(Fd {
                    target: node.clone(),
                    owner: owner.clone(),
                });
                reopened.push(*pid);
            }
        }
        reopened
    }
}

/// How a test makes a sound server misbehave.
impl SimHost {
    /// The sound server `pid`, once it has released its card through the reservation, opens
    /// `node` again at pitcrew's next write, as WirePlumber did when the reservation's name was
    /// free for a moment between its release and pitcrew's request. Asked again, it lets go,
    /// unless `keeps`.
    pub fn reopens_after_release(&self, pid: u32, node: &str, keeps: bool) {
        let quirk = Quirk::Reopens {
            node: node.to_string(),
            armed: false,
            keeps,
        };
        self.shared.lock().sound.add_quirk(pid, quirk);
    }

    /// The sound server `pid` answers `false` when asked to release its card.
    pub fn refuses_release(&self, pid: u32) {
        self.shared.lock().sound.add_quirk(pid, Quirk::Refuses);
    }
}

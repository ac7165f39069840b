//! What a detach says about the sound server on the card's HDMI audio: released through the
//! reservation, opened again and asked again, kept past the deadline, or refused.

use super::handover::run;
use super::Catalog;
use crate::engine::detach;
use pitcrew_sim::fixtures;

#[test]
fn sound_release_messages() {
    let mut c = Catalog::default();

    let sim = fixtures::radeon_beside_the_desktop();
    run(&mut c, "released", &sim, || detach(&sim, &["03:00.0"]));

    let sim = fixtures::radeon_beside_the_desktop();
    sim.reopens_after_release(2200, "/dev/snd/pcmC1D3p", false);
    run(&mut c, "reopened, asked again", &sim, || {
        detach(&sim, &["03:00.0"])
    });

    let sim = fixtures::radeon_beside_the_desktop();
    sim.reopens_after_release(2200, "/dev/snd/pcmC1D3p", true);
    run(&mut c, "reopened and kept", &sim, || {
        detach(&sim, &["03:00.0"])
    });

    let sim = fixtures::radeon_beside_the_desktop();
    sim.refuses_release(2200);
    run(&mut c, "refused", &sim, || detach(&sim, &["03:00.0"]));

    insta::assert_snapshot!("sound", c.render());
}

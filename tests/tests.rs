//! pitcrew's integration tests, one binary (as ripgrep does): each module covers one area.

mod engine;

mod catalog;

mod cli;
mod config;
mod console;
mod crash;
mod desktop_render;
mod doctor;
mod doctor_gpu;
mod doctor_setup;
mod faults;
mod handover;
mod hardening;
mod holders;
mod hook_binary;
mod hook_ops;
mod install;
mod install_advice;
mod keep_off;
mod keep_off_nodes;
mod layers;
mod lending;
mod mapped_holders;
mod openrc;
mod plans;
mod property;
mod rebar;
mod sound_release;
mod write_helper;

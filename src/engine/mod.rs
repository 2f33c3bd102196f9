//! Pure decisions: schedules, freezes and the choices built on them. No I/O, no async, no clock: now is a parameter.

pub mod windows;

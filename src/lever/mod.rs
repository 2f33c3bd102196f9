//! The daily levers (`ringmaster …` and `kubectl ringmaster …`): `pull`, the verbs that
//! change what the operator does.

pub mod pull;

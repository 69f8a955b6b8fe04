//! Chapter 2 (objects): send the notes' `Persona` as data, never as code.
//!
//! `pickle.loads` runs whatever the bytes tell it to; MessagePack only ever
//! builds the fields a `Persona` has, and anything else is an error.

use serde::{Deserialize, Serialize};
use trama_protocol::Codec;

/// The notes' example object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persona {
    /// Full name.
    pub nombre: String,
    /// E-mail address.
    pub correo: String,
}

/// The payload of a message carrying `persona`.
pub fn encode_persona(persona: &Persona) -> trama_protocol::Result<Vec<u8>> {
    Codec::MsgPack.to_vec(persona)
}

/// A `Persona` back from a payload, or an error saying why it is not one.
pub fn decode_persona(payload: &[u8]) -> trama_protocol::Result<Persona> {
    Codec::MsgPack.decode(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_persona_round_trips_and_anything_else_is_an_error() {
        let juan = Persona {
            nombre: "Juan Pérez".into(),
            correo: "jp@ejemplo.com".into(),
        };
        let payload = encode_persona(&juan).unwrap();
        assert_eq!(decode_persona(&payload).unwrap(), juan);
        // A pickle, a number, half a message: errors, never a crash.
        for bad in [&b"\x80\x04\x95"[..], b"\x2a", &payload[..payload.len() / 2]] {
            assert!(decode_persona(bad).is_err(), "{bad:?}");
        }
    }
}

//! Codecs: how a typed value becomes a frame's payload and back.
//!
//! The notes send Python objects with `json` and with `pickle`. trama offers
//! JSON and MessagePack for typed values, plus UTF-8 text and raw bytes.
//! MessagePack plays pickle's role (compact, binary, any nested structure)
//! without its hazard: unpickling runs code chosen by the sender, so a server
//! that unpickles what a stranger sent gives that stranger a shell.
//! MessagePack only ever yields data. Structs are written as maps with their
//! field names, so Python's `msgpack.unpackb` gives back a `dict`.

use serde::{de::DeserializeOwned, Serialize};

use crate::{Error, Result};

/// A serialization format for typed values.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use trama_protocol::Codec;
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct Persona { nombre: String, correo: String }
///
/// let p = Persona { nombre: "Juan Pérez".into(), correo: "jp@ejemplo.com".into() };
/// for codec in [Codec::Json, Codec::MsgPack] {
///     let bytes = codec.to_vec(&p)?;
///     assert_eq!(codec.decode::<Persona>(&bytes)?, p);
/// }
/// # Ok::<(), trama_protocol::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// JSON text (serde_json), what the notes' first client sends.
    Json,
    /// MessagePack with named fields (rmp-serde), readable by Python's `msgpack`.
    MsgPack,
}

impl Codec {
    /// The codec's name as used in errors and flags: `"json"` or `"msgpack"`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::MsgPack => "msgpack",
        }
    }

    /// Append `value`, encoded, to `out`.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T, out: &mut Vec<u8>) -> Result<()> {
        let result = match self {
            Codec::Json => serde_json::to_writer(&mut *out, value).map_err(|e| e.to_string()),
            Codec::MsgPack => {
                rmp_serde::encode::write_named(&mut *out, value).map_err(|e| e.to_string())
            }
        };
        result.map_err(|reason| Error::Encode {
            codec: self.name(),
            reason,
        })
    }

    /// `value`, encoded, in a new vector.
    pub fn to_vec<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encode(value, &mut out)?;
        Ok(out)
    }

    /// Decode one value that fills the whole payload.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T> {
        let result = match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::MsgPack => {
                let mut rest = bytes;
                let value = T::deserialize(&mut rmp_serde::Deserializer::new(&mut rest));
                match value {
                    Err(e) => Err(e.to_string()),
                    Ok(_) if !rest.is_empty() => {
                        Err(format!("{} bytes left after the value", rest.len()))
                    }
                    Ok(v) => Ok(v),
                }
            }
        };
        result.map_err(|reason| Error::Decode {
            codec: self.name(),
            len: bytes.len(),
            reason,
        })
    }
}

impl std::str::FromStr for Codec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Codec> {
        match s {
            "json" => Ok(Codec::Json),
            "msgpack" | "messagepack" => Ok(Codec::MsgPack),
            other => Err(Error::Config(format!(
                "unknown codec {other:?} (expected json or msgpack)"
            ))),
        }
    }
}

/// A payload as UTF-8 text, or an error naming the first bad byte.
///
/// ```
/// assert_eq!(trama_protocol::text(b"hola").unwrap(), "hola");
/// assert_eq!(
///     trama_protocol::text(b"ol\xe1").unwrap_err().to_string(),
///     "payload is not valid UTF-8 at byte 2"
/// );
/// ```
pub fn text(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|e| Error::Utf8 {
        at: e.valid_up_to(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Persona {
        nombre: String,
        correo: String,
    }

    #[test]
    fn msgpack_structs_are_maps_with_names() {
        let p = Persona {
            nombre: "A".into(),
            correo: "b".into(),
        };
        let bytes = Codec::MsgPack.to_vec(&p).unwrap();
        // fixmap of 2, "nombre" -> "A", "correo" -> "b"
        assert_eq!(bytes[0], 0x82);
        let as_map: BTreeMap<String, String> = Codec::MsgPack.decode(&bytes).unwrap();
        assert_eq!(as_map["nombre"], "A");
    }

    #[test]
    fn notes_json_dict_reads_as_a_map() {
        // The notes' json.dumps({1: "Hola", 2: "Chao"}) turns keys into strings.
        let m: BTreeMap<String, String> = Codec::Json
            .decode(br#"{"1": "Hola", "2": "Chao"}"#)
            .unwrap();
        assert_eq!(m["2"], "Chao");
    }

    #[test]
    fn bad_payloads_name_the_codec() {
        let e = Codec::Json.decode::<Persona>(b"{nope").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("json decode failed on a 5-byte payload"),
            "{e}"
        );
        let e = Codec::MsgPack.decode::<Persona>(&[0xc1]).unwrap_err();
        assert!(e.to_string().starts_with("msgpack decode failed"), "{e}");
        let e = Codec::MsgPack.decode::<u8>(&[0x01, 0x02]).unwrap_err();
        assert!(e.to_string().contains("1 bytes left"), "{e}");
    }

    #[test]
    fn codec_names_parse() {
        assert_eq!("json".parse::<Codec>().unwrap(), Codec::Json);
        assert_eq!("msgpack".parse::<Codec>().unwrap(), Codec::MsgPack);
        assert!("pickle".parse::<Codec>().is_err());
    }
}

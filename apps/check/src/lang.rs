//! The languages trama-check speaks to people: English and Spanish (the
//! course's). `--lang es|en` chooses; without it the environment's locale
//! does (`LC_ALL`, then `LC_MESSAGES`, then `LANG`: one that starts with
//! `es` means Spanish, anything else English).
//!
//! Only what people read is translated: the status words of the text
//! report, the summary, the checks' descriptions (`--list`), the hints and
//! the most common reasons. The JSON and CSV keys and status values stay
//! English: scripts read them.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::plan::Status;

/// A language trama-check speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English (the default).
    En,
    /// Spanish.
    Es,
}

/// The language of this run (set once, by `run`); English until then.
static CURRENT: AtomicU8 = AtomicU8::new(0);

impl Lang {
    /// `en` or `es`.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }

    /// The language `--lang` names (`es`, `en`), if any.
    pub fn parse(name: &str) -> Option<Lang> {
        match name.trim().to_ascii_lowercase().as_str() {
            "es" | "spanish" | "español" => Some(Lang::Es),
            "en" | "english" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language a locale's variables choose: the first one set and not
    /// empty of `LC_ALL`, `LC_MESSAGES` and `LANG` (POSIX's order) decides;
    /// Spanish if it starts with `es` (`es_CL.UTF-8`, `es`), else English.
    pub fn from_locale(
        lc_all: Option<&str>,
        lc_messages: Option<&str>,
        lang: Option<&str>,
    ) -> Lang {
        let chosen = [lc_all, lc_messages, lang]
            .into_iter()
            .flatten()
            .find(|v| !v.is_empty());
        match chosen {
            Some(v) if v.to_ascii_lowercase().starts_with("es") => Lang::Es,
            _ => Lang::En,
        }
    }

    /// The language of this process's environment.
    pub fn from_env() -> Lang {
        let var = |k: &str| std::env::var(k).ok();
        Lang::from_locale(
            var("LC_ALL").as_deref(),
            var("LC_MESSAGES").as_deref(),
            var("LANG").as_deref(),
        )
    }

    /// Make `self` the language of this run.
    pub fn set(self) {
        CURRENT.store(self as u8, Ordering::Relaxed);
    }

    /// The language of this run.
    pub fn current() -> Lang {
        if CURRENT.load(Ordering::Relaxed) == Lang::Es as u8 {
            Lang::Es
        } else {
            Lang::En
        }
    }

    /// The word the text report shows for `status` (the JSON and CSV keep
    /// `pass`, `fail`, `skip`).
    pub fn status(self, status: Status) -> &'static str {
        match (self, status) {
            (Lang::En, s) => s.as_str(),
            (Lang::Es, Status::Pass) => "bien",
            (Lang::Es, Status::Fail) => "falla",
            (Lang::Es, Status::Skip) => "omitida",
        }
    }

    /// `N passed, N failed, N skipped` (and which failed).
    pub fn summary(self, passed: usize, failed: usize, skipped: usize, names: &[&str]) -> String {
        let mut s = match self {
            Lang::En => format!("{passed} passed, {failed} failed, {skipped} skipped"),
            Lang::Es => format!("bien: {passed}, fallan: {failed}, omitidas: {skipped}"),
        };
        if !names.is_empty() {
            let label = match self {
                Lang::En => "failed",
                Lang::Es => "fallan",
            };
            s.push_str(&format!(" ({label}: {})", names.join(", ")));
        }
        s
    }

    /// The label before a hint's text.
    pub fn hint_label(self) -> &'static str {
        match self {
            Lang::En => "hint",
            Lang::Es => "pista",
        }
    }

    /// `catches` and `notes` in `--list`.
    pub fn list_labels(self) -> (&'static str, &'static str) {
        match self {
            Lang::En => ("catches", "notes"),
            Lang::Es => ("detecta", "apuntes"),
        }
    }

    /// A check's description (`--list`'s "catches") in this language;
    /// `english` is the check's own `purpose()`.
    pub fn purpose(self, name: &str, english: &'static str) -> &'static str {
        if self == Lang::En {
            return english;
        }
        PURPOSES_ES
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(english, |(_, es)| es)
    }

    /// A reason (in numbers, written in English by the probes) in this
    /// language: the most common phrases are translated, the rest left as
    /// they are.
    pub fn reason(self, english: &str) -> String {
        if self == Lang::En {
            return english.to_string();
        }
        if let Some(whole) = SENTENCES_ES
            .iter()
            .find_map(|(en, es)| fill(en, es, english))
        {
            return whole;
        }
        let mut s = english.to_string();
        for (en, es) in REASONS_ES {
            if s.contains(en) {
                s = s.replace(en, es);
            }
        }
        s
    }
}

/// The checks' descriptions in Spanish, by check name.
const PURPOSES_ES: &[(&str, &str)] = &[
    ("one-message", "ninguna respuesta (dialecto o puerto equivocado), o un servidor que termina con su primer cliente"),
    ("byte-at-a-time", "un solo recv() que se supone devuelve un encabezado o un cuerpo completo"),
    ("ten-in-one-write", "un recv() tomado como un mensaje, perdiendo los mensajes que llegaron con él"),
    ("empty-message", "un mensaje de largo cero confundido con una conexión cerrada, o sin respuesta"),
    ("large-message", "un mensaje más grande que un recv() queda cortado"),
    ("concurrent-clients", "un servidor que atiende a un cliente a la vez"),
    ("slow-reader", "un cliente que deja de leer bloquea el servidor para todos, o (con --spawn) lo deja girando al 100% de CPU cuando se va"),
    ("mid-message-disconnect", "un cliente que se va a medio mensaje bota o atasca el servidor, o (con --spawn) lo deja girando al 100% de CPU"),
    ("huge-header", "un encabezado que anuncia 4 GiB deja al servidor sin atender a los demás"),
    ("garbage", "bytes que no se decodifican botan el servidor"),
    ("memory-bounded", "memoria reservada confiando en el largo de un encabezado"),
    ("idle-cpu", "un thread que gira al 100% de CPU cuando su cliente se va (recv devuelve b'')"),
    ("threads-released", "threads de clientes que se fueron y que nunca terminan"),
    ("small-file", "un archivo cortado a lo que devolvió un recv() (el primer receptor de los apuntes), o no guardado"),
    ("file-byte-at-a-time", "un solo recv(4) tomado como el encabezado completo, o un recv() como un chunk completo"),
    ("empty-file", "un archivo de 0 bytes tomado como conexión cerrada, o esperado para siempre"),
    ("large-file", "un archivo guardado entero en memoria antes de escribirlo"),
    ("short-file", "un ciclo de recepción que gira con b'' cuando el emisor se va antes"),
    ("huge-file-header", "memoria reservada confiando en un encabezado 0xFFFFFFFF"),
    ("sent-0-bytes", "sin encabezado para un archivo vacío"),
    ("sent-1-byte", "un encabezado cuyo ancho u orden de bytes no es el de los apuntes"),
    ("sent-4096-bytes", "un archivo cortado en una lectura o un envío de 4096 bytes"),
    ("sent-4097-bytes", "el byte después de un chunk completo perdido (un error por uno en el ciclo de envío)"),
    ("sent-3-mib", "send() tomado como si enviara todo, o un encabezado que no coincide con el cuerpo"),
    ("line-sent", "una línea escrita que no se envía, se envía sin encabezado o repartida en varios mensajes"),
    ("message-shown", "el mensaje del servidor no se muestra, o sólo después de escribir algo más"),
    ("shown-byte-at-a-time", "un solo recv(4) tomado como el encabezado completo"),
    ("two-in-one-segment", "un recv() tomado como un mensaje, perdiendo el que llegó con él"),
    ("long-message", "un mensaje mostrado como lo que devolvió un recv(), cortado"),
    ("server-closes", "un ciclo de recepción que gira con b'' (o un cliente que nunca termina) cuando el servidor se va"),
    ("first-peer-sends", "una línea escrita que nunca llega al otro peer"),
    ("second-peer-sends", "una línea escrita que nunca llega al otro peer"),
    ("first-peer-receives", "el mensaje del otro peer nunca se muestra"),
    ("second-peer-receives", "el mensaje del otro peer nunca se muestra"),
];

/// `text` read with the template `en` (`{}` for any text) and written with
/// `es` (the same number of `{}`, in the same order); `None` if it does not
/// match.
fn fill(en: &str, es: &str, text: &str) -> Option<String> {
    let parts: Vec<&str> = en.split("{}").collect();
    let mut rest = text.strip_prefix(parts[0])?;
    let mut holes = Vec::new();
    for (i, lit) in parts.iter().enumerate().skip(1) {
        let end = if i == parts.len() - 1 {
            // The last literal ends the text.
            if !rest.ends_with(lit) {
                return None;
            }
            rest.len() - lit.len()
        } else {
            rest.find(lit)?
        };
        holes.push(&rest[..end]);
        rest = &rest[end + lit.len()..];
    }
    if parts.len() == 1 && !rest.is_empty() {
        return None;
    }
    let mut out = String::new();
    let mut holes = holes.into_iter();
    for (i, lit) in es.split("{}").enumerate() {
        if i > 0 {
            out.push_str(holes.next()?);
        }
        out.push_str(lit);
    }
    Some(out)
}

/// Whole reasons the server battery gives most often (passes), English
/// template to Spanish; `{}` is any text (a number), kept in order.
const SENTENCES_ES: &[(&str, &str)] = &[
    ("a {}-byte message was answered in {} ms, and again for a second client after the first left",
     "un mensaje de {} bytes recibió respuesta en {} ms, y también un segundo cliente después de que el primero se fue"),
    ("{} bytes sent one per segment, {} ms apart, were answered as one message",
     "{} bytes enviados uno por segmento, cada {} ms, recibieron respuesta como un solo mensaje"),
    ("10 messages ({} bytes) in one write were answered in order",
     "10 mensajes ({} bytes) en una sola escritura recibieron respuesta en orden"),
    ("an empty message came back empty, and the next message was echoed",
     "un mensaje vacío volvió vacío, y el siguiente volvió igual"),
    ("a {}-byte message came back intact in {} ms",
     "un mensaje de {} bytes volvió intacto en {} ms"),
    ("all {} clients connected at once were answered",
     "los {} clientes conectados a la vez recibieron respuesta"),
    ("a client left {} bytes into a {}-byte message; the next client was answered; after the client left mid-message the server used {} ms of CPU in {} ms ({}% of one core, limit {}%)",
     "un cliente se fue a los {} bytes de un mensaje de {} bytes; el siguiente cliente recibió respuesta; después de que el cliente se fue a medio mensaje el servidor usó {} ms de CPU en {} ms ({}% de un núcleo, límite {}%)"),
    ("a client left {} bytes into a {}-byte message; the next client was answered, but after the client left mid-message the server used {} ms of CPU in {} ms ({}% of one core, limit {}%): something spins, most likely a loop that keeps calling recv() after it returned b''",
     "un cliente se fue a los {} bytes de un mensaje de {} bytes; el siguiente cliente recibió respuesta, pero después de que el cliente se fue a medio mensaje el servidor usó {} ms de CPU en {} ms ({}% de un núcleo, límite {}%): algo gira, muy probablemente un ciclo que sigue llamando a recv() después de que devolvió b''"),
    ("a client left {} bytes into a {}-byte message; the next client was answered; the server's CPU was not measured after the client left mid-message (run with --spawn)",
     "un cliente se fue a los {} bytes de un mensaje de {} bytes; el siguiente cliente recibió respuesta; no se midió la CPU del servidor después de que el cliente se fue a medio mensaje (usa --spawn)"),
    ("a client left {} bytes into a {}-byte message; the next client was answered",
     "un cliente se fue a los {} bytes de un mensaje de {} bytes; el siguiente cliente recibió respuesta"),
    ("peak memory grew by {} after a header announcing {} bytes (limit {})",
     "la memoria máxima creció {} tras un encabezado que anuncia {} bytes (límite {})"),
    ("{} threads before the battery, {} after its {} clients left (allowed {})",
     "{} threads antes de la batería, {} después de que se fueron sus {} clientes (se permiten {})"),
    ("needs {}, which did not pass ({})", "requiere {}, que no pasó ({})"),
    ("measures the server's process: run with --spawn", "mide el proceso del servidor: usa --spawn"),
];

/// The most common phrases of the reasons, English to Spanish, applied in
/// this order (longer phrases before the shorter ones they contain).
const REASONS_ES: &[(&str, &str)] = &[
    ("clients connected at once were answered", "clientes conectados a la vez recibieron respuesta"),
    ("(the server seems to serve one client at a time)", "(el servidor parece atender a un cliente a la vez)"),
    ("the first one left waiting", "el primero que quedó esperando"),
    ("(first difference at byte ", "(primera diferencia en el byte "),
    ("bytes that differ from the", "bytes que difieren de los"),
    (" expected, first at byte ", " esperados, primero en el byte "),
    ("the answer: ", "la respuesta: "),
    ("got ", "llegaron "),
    (" bytes instead of ", " bytes en vez de "),
    ("of one core over", "de un núcleo durante"),
    ("while idle after ", "en reposo tras irse "),
    (" clients left (limit ", " clientes (límite "),
    ("something spins, most likely a loop that keeps calling recv() after it returned b''",
     "algo gira, muy probablemente un ciclo que sigue llamando a recv() después de que devolvió b''"),
    ("the server closed the connection without answering", "el servidor cerró la conexión sin responder"),
    ("; the server exited (", "; el servidor terminó ("),
    ("it spins: ", "gira: "),
    // The CPU after a client left mid-conversation (`slow-reader`; `mid-message-disconnect`
    // has whole sentences above).
    (", but after the client that never reads left the server used ",
     ", pero después de que se fue el cliente que nunca lee el servidor usó "),
    ("; after the client that never reads left the server used ",
     "; después de que se fue el cliente que nunca lee el servidor usó "),
    ("; the server's CPU was not measured after the client that never reads left (run with --spawn)",
     "; no se midió la CPU del servidor después de que se fue el cliente que nunca lee (usa --spawn)"),
    // Not measured for another reason than a missing --spawn: the sentence
    // in pieces, and each reason the probes give.
    ("; the server's CPU was not measured after the client left mid-message (",
     "; no se midió la CPU del servidor después de que el cliente se fue a medio mensaje ("),
    ("; the server's CPU was not measured after the client that never reads left (",
     "; no se midió la CPU del servidor después de que se fue el cliente que nunca lee ("),
    ("a client left ", "un cliente se fue a los "),
    (" bytes into a ", " bytes de un mensaje de "),
    ("-byte message; the next client was answered", " bytes; el siguiente cliente recibió respuesta"),
    ("the server was not started by this tool (--spawn)", "el servidor no lo inició esta herramienta (--spawn)"),
    ("cannot read the processes of this system", "no se pueden leer los procesos de este sistema"),
    ("the server's processes are gone", "los procesos del servidor ya no están"),
    (" ms of CPU in ", " ms de CPU en "),
    ("% of one core, limit ", "% de un núcleo, límite "),
    ("time limit of ", "límite de tiempo de "),
    (" s reached", " s alcanzado"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_locale_decides_in_posix_order() {
        assert_eq!(Lang::from_locale(None, None, None), Lang::En);
        assert_eq!(Lang::from_locale(None, None, Some("es_CL.UTF-8")), Lang::Es);
        assert_eq!(Lang::from_locale(None, None, Some("es")), Lang::Es);
        assert_eq!(Lang::from_locale(None, None, Some("en_US.UTF-8")), Lang::En);
        assert_eq!(Lang::from_locale(None, None, Some("C")), Lang::En);
        // LC_ALL wins over the others, LC_MESSAGES over LANG.
        assert_eq!(
            Lang::from_locale(Some("C"), Some("es_ES"), Some("es_ES")),
            Lang::En
        );
        assert_eq!(
            Lang::from_locale(None, Some("es_ES.UTF-8"), Some("en_GB")),
            Lang::Es
        );
        assert_eq!(
            Lang::from_locale(None, Some("en_GB"), Some("es_ES")),
            Lang::En
        );
        // An empty variable is as good as unset.
        assert_eq!(
            Lang::from_locale(Some(""), Some(""), Some("es_MX")),
            Lang::Es
        );
        assert_eq!(Lang::from_locale(Some("ES_es"), None, None), Lang::Es);
    }

    #[test]
    fn lang_names_parse() {
        assert_eq!(Lang::parse("es"), Some(Lang::Es));
        assert_eq!(Lang::parse("EN"), Some(Lang::En));
        assert_eq!(Lang::parse("fr"), None);
    }

    #[test]
    fn every_check_has_a_spanish_description() {
        for c in crate::plan::Check::ALL {
            assert_ne!(Lang::Es.purpose(c.name(), c.purpose()), c.purpose(), "{c}");
        }
        for c in crate::programs::ProgramCheck::ALL {
            let es = Lang::Es.purpose(c.name(), c.purpose());
            assert_ne!(es, c.purpose(), "{}", c.name());
        }
    }

    #[test]
    fn summary_and_reasons_in_spanish() {
        assert_eq!(
            Lang::Es.summary(1, 1, 0, &["idle-cpu"]),
            "bien: 1, fallan: 1, omitidas: 0 (fallan: idle-cpu)"
        );
        assert_eq!(
            Lang::Es.reason("got 0 bytes instead of 20 (first difference at byte 0)"),
            "llegaron 0 bytes en vez de 20 (primera diferencia en el byte 0)"
        );
        assert_eq!(Lang::En.reason("got 0 bytes"), "got 0 bytes");
        assert_eq!(
            Lang::Es.reason("all 50 clients connected at once were answered"),
            "los 50 clientes conectados a la vez recibieron respuesta"
        );
        assert_eq!(
            Lang::Es.reason("3 threads before the battery, 3 after its 68 clients left (allowed 7)"),
            "3 threads antes de la batería, 3 después de que se fueron sus 68 clientes (se permiten 7)"
        );
        assert_eq!(
            Lang::Es.reason("needs idle-cpu, which did not pass (fail)"),
            "requiere idle-cpu, que no pasó (fail)"
        );
        // The CPU after a client left mid-conversation.
        assert_eq!(
            Lang::Es.reason(
                "a client left 496 bytes into a 1000-byte message; the next client was answered, \
                 but after the client left mid-message the server used 480 ms of CPU in 500 ms \
                 (96.0% of one core, limit 10%): something spins, most likely a loop that keeps \
                 calling recv() after it returned b''"
            ),
            "un cliente se fue a los 496 bytes de un mensaje de 1000 bytes; el siguiente cliente \
             recibió respuesta, pero después de que el cliente se fue a medio mensaje el servidor \
             usó 480 ms de CPU en 500 ms (96.0% de un núcleo, límite 10%): algo gira, muy \
             probablemente un ciclo que sigue llamando a recv() después de que devolvió b''"
        );
        assert_eq!(
            Lang::Es.reason(
                "a client left 496 bytes into a 1000-byte message; the next client was answered; \
                 after the client left mid-message the server used 0 ms of CPU in 1001 ms \
                 (0.0% of one core, limit 10%)"
            ),
            "un cliente se fue a los 496 bytes de un mensaje de 1000 bytes; el siguiente cliente \
             recibió respuesta; después de que el cliente se fue a medio mensaje el servidor usó \
             0 ms de CPU en 1001 ms (0.0% de un núcleo, límite 10%)"
        );
        assert_eq!(
            Lang::Es.reason(
                "a client left 496 bytes into a 1000-byte message; the next client was answered; \
                 the server's CPU was not measured after the client left mid-message (run with --spawn)"
            ),
            "un cliente se fue a los 496 bytes de un mensaje de 1000 bytes; el siguiente cliente \
             recibió respuesta; no se midió la CPU del servidor después de que el cliente se fue a \
             medio mensaje (usa --spawn)"
        );
        let slow = Lang::Es.reason(
            "another client was answered while one that never reads had sent 3.1 MiB (then its \
             writes blocked), but after the client that never reads left the server used 990 ms \
             of CPU in 1000 ms (99.0% of one core, limit 10%): something spins, most likely a \
             loop that keeps calling recv() after it returned b''",
        );
        assert!(
            slow.contains(", pero después de que se fue el cliente que nunca lee el servidor usó 990 ms de CPU en 1000 ms (99.0% de un núcleo, límite 10%): algo gira"),
            "{slow}"
        );
        assert_eq!(
            Lang::Es.reason(
                "a client left 496 bytes into a 1000-byte message; the next client was answered; \
                 the server's CPU was not measured after the client left mid-message (the \
                 server's processes are gone)"
            ),
            "un cliente se fue a los 496 bytes de un mensaje de 1000 bytes; el siguiente cliente \
             recibió respuesta; no se midió la CPU del servidor después de que el cliente se fue a \
             medio mensaje (los procesos del servidor ya no están)"
        );
        let slow = Lang::Es.reason(
            "another client was answered while one that never reads had sent 3.1 MiB (then its \
             writes blocked); the server's CPU was not measured after the client that never \
             reads left (cannot read the processes of this system)",
        );
        assert!(
            slow.ends_with("; no se midió la CPU del servidor después de que se fue el cliente que nunca lee (no se pueden leer los procesos de este sistema)"),
            "{slow}"
        );
        // A template must match the whole reason.
        assert_eq!(fill("a {} b", "x {} y", "a 1 b c"), None);
        assert_eq!(fill("a {} b", "x {} y", "a 1 b"), Some("x 1 y".into()));
    }
}

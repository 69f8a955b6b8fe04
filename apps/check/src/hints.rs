//! What a failure most likely means and how to fix it, pointing to the
//! section of the course notes: one table, keyed by check and cause, in
//! English and Spanish.
//!
//! The reason of a failure stays what the probes saw, in numbers; the hint
//! is read from the table by the check and the cause [`cause`] reads in that
//! reason, so a row read back from a batch's JSON gets its hint too.

use crate::lang::Lang;
use crate::plan::{Check, Outcome, Status};

/// The likely cause of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// One recv(4) for the header, or one recv(n) for the body, taken as
    /// returning all the bytes at once.
    ShortRead,
    /// A receive loop that goes on after recv() returned b''.
    Spin,
    /// The answers look like replies, not echoes (`--expect reply`).
    Reply,
    /// The length in characters (`len(text)`) instead of bytes.
    CharLength,
    /// Whatever else failed: the check's own usual cause.
    Usual,
}

/// A hint: for `check` failing with `cause`, what to do, in each language.
struct Hint {
    check: &'static str,
    cause: Cause,
    en: &'static str,
    es: &'static str,
}

const SHORT_READ_EN: &str = "a single recv(4) for the header (or recv(n) for the body) assumes the bytes arrive together; TCP may deliver them a few at a time. Fix: loop until exactly n bytes have arrived (a recv_exact helper)";
const SHORT_READ_ES: &str = "un solo recv(4) para el encabezado (o recv(n) para el cuerpo) supone que los bytes llegan juntos; TCP puede entregarlos de a pocos. Arreglo: repite recv hasta tener exactamente n bytes (una función recibir_exacto)";
const SPIN_EN: &str = "recv returned b'' (the other side closed) and the loop goes on calling it, at 100% CPU. Fix: leave the loop when recv returns b''";
const SPIN_ES: &str = "recv devolvió b'' (el otro lado cerró) y el ciclo sigue llamándolo, al 100% de CPU. Arreglo: sal del ciclo cuando recv devuelva b''";

const LEFT_SPIN_EN: &str = "the server kept burning CPU after the client left: the loop serving that client does not stop when recv returns b'' (a client that leaves, even mid-message or with a reset, makes every later recv return b'' at once), so it spins at 100% CPU. Fix: leave the loop, and close the socket, when recv returns b'' (in the loop that reads a message's body too) or raises ConnectionResetError";
const LEFT_SPIN_ES: &str = "el servidor siguió gastando CPU después de que el cliente se fue: el ciclo que atiende a ese cliente no termina cuando recv devuelve b'' (un cliente que se va, aunque sea a medio mensaje o con un reset, hace que cada recv siguiente devuelva b'' de inmediato), así que gira al 100% de CPU. Arreglo: sal del ciclo, y cierra el socket, cuando recv devuelva b'' (también en el ciclo que lee el cuerpo de un mensaje) o lance ConnectionResetError";

/// The table. A check with no row for a cause falls back to its `Usual` row.
const HINTS: &[Hint] = &[
    Hint { check: "byte-at-a-time", cause: Cause::ShortRead, en: SHORT_READ_EN, es: SHORT_READ_ES },
    Hint { check: "large-message", cause: Cause::ShortRead, en: SHORT_READ_EN, es: SHORT_READ_ES },
    Hint { check: "file-byte-at-a-time", cause: Cause::ShortRead, en: SHORT_READ_EN, es: SHORT_READ_ES },
    Hint { check: "small-file", cause: Cause::ShortRead, en: "the file was read with one recv(), which returns what has arrived so far. Fix: read the 4-byte size first, then loop on recv until that many bytes have arrived", es: "el archivo se leyó con un solo recv(), que devuelve lo que ha llegado hasta ahora. Arreglo: lee primero el tamaño de 4 bytes y luego repite recv hasta recibir esa cantidad de bytes" },
    Hint { check: "shown-byte-at-a-time", cause: Cause::ShortRead, en: SHORT_READ_EN, es: SHORT_READ_ES },
    Hint { check: "long-message", cause: Cause::ShortRead, en: SHORT_READ_EN, es: SHORT_READ_ES },
    Hint { check: "ten-in-one-write", cause: Cause::ShortRead, en: "one recv() was taken as one message; it may return several messages, or part of one. Fix: read the 4-byte header, then exactly that many bytes, and repeat: never more than one message per read", es: "se tomó un recv() como un mensaje; puede devolver varios mensajes, o parte de uno. Arreglo: lee el encabezado de 4 bytes, luego exactamente esa cantidad de bytes, y repite: nunca más de un mensaje por lectura" },
    Hint { check: "two-in-one-segment", cause: Cause::ShortRead, en: "one recv() was taken as one message; it may return two. Fix: read the 4-byte header, then exactly that many bytes, and repeat", es: "se tomó un recv() como un mensaje; puede devolver dos. Arreglo: lee el encabezado de 4 bytes, luego exactamente esa cantidad de bytes, y repite" },
    Hint { check: "idle-cpu", cause: Cause::Spin, en: SPIN_EN, es: SPIN_ES },
    Hint { check: "server-closes", cause: Cause::Spin, en: SPIN_EN, es: SPIN_ES },
    Hint { check: "short-file", cause: Cause::Spin, en: SPIN_EN, es: SPIN_ES },
    Hint { check: "mid-message-disconnect", cause: Cause::Spin, en: LEFT_SPIN_EN, es: LEFT_SPIN_ES },
    Hint { check: "slow-reader", cause: Cause::Spin, en: LEFT_SPIN_EN, es: LEFT_SPIN_ES },
    Hint { check: "short-file", cause: Cause::Usual, en: "when the sender leaves before the size promised, recv returns b''. Fix: leave the receive loop when recv returns b'' (and say the file is incomplete)", es: "cuando el emisor se va antes del tamaño prometido, recv devuelve b''. Arreglo: sal del ciclo de recepción cuando recv devuelva b'' (y avisa que el archivo quedó incompleto)" },
    Hint { check: "server-closes", cause: Cause::Usual, en: "when the server closes, recv returns b''. Fix: leave the receive loop when recv returns b'' and end the program", es: "cuando el servidor cierra, recv devuelve b''. Arreglo: sal del ciclo de recepción cuando recv devuelva b'' y termina el programa" },
    Hint { check: "threads-released", cause: Cause::Usual, en: "the thread of a client that left never ends: its loop does not end when recv returns b''. Fix: leave the loop (and close the socket) when recv returns b''", es: "el thread de un cliente que se fue nunca termina: su ciclo no acaba cuando recv devuelve b''. Arreglo: sal del ciclo (y cierra el socket) cuando recv devuelva b''" },
    Hint { check: "one-message", cause: Cause::Reply, en: "the answer is not the message sent back: if your server replies rather than echoes, check it with `--expect reply` (or `--program reply-server`)", es: "la respuesta no es el mensaje devuelto: si tu servidor responde en vez de hacer eco, revísalo con `--expect reply` (o `--program reply-server`)" },
    Hint { check: "one-message", cause: Cause::Usual, en: "no answer: check the address and port, and the dialect (a 4-byte big-endian length before each message, or `--raw`); a server that ends after its first client must loop on accept()", es: "sin respuesta: revisa la dirección y el puerto, y el dialecto (un largo de 4 bytes big-endian antes de cada mensaje, o `--raw`); un servidor que termina tras su primer cliente debe repetir accept() en un ciclo" },
    Hint { check: "line-sent", cause: Cause::CharLength, en: "the header announces fewer bytes than were sent: the length was counted in characters (len(text)), not bytes; a non-ASCII character takes more than one byte. Fix: encode first and send len(text.encode())", es: "el encabezado anuncia menos bytes de los enviados: el largo se contó en caracteres (len(texto)), no en bytes; un carácter no ASCII ocupa más de un byte. Arreglo: codifica primero y envía len(texto.encode())" },
    Hint { check: "empty-message", cause: Cause::Usual, en: "a zero-length message is not a closed connection: only recv returning b'' for the header means the client left. Fix: after a 0 header, answer (or skip) and keep reading", es: "un mensaje de largo cero no es una conexión cerrada: sólo un recv que devuelve b'' al leer el encabezado significa que el cliente se fue. Arreglo: tras un encabezado 0, responde (u omite) y sigue leyendo" },
    Hint { check: "empty-file", cause: Cause::Usual, en: "a 0-byte file is not a closed connection: with a size of 0, the receive loop must not run at all. Fix: loop while fewer than size bytes arrived (none, here), then save", es: "un archivo de 0 bytes no es una conexión cerrada: con tamaño 0, el ciclo de recepción no debe ni empezar. Arreglo: repite mientras hayan llegado menos bytes que el tamaño (ninguno aquí) y guarda" },
    Hint { check: "concurrent-clients", cause: Cause::Usual, en: "the server serves one client at a time. Fix: handle each accepted client in its own thread (threading.Thread), as the notes' concurrent server does", es: "el servidor atiende a un cliente a la vez. Arreglo: atiende cada cliente aceptado en su propio thread (threading.Thread), como el servidor concurrente de los apuntes" },
    Hint { check: "slow-reader", cause: Cause::Usual, en: "one client that does not read blocks everyone: sendall to it waits, and something shared (a lock, the accept loop) waits with it. Fix: one thread per client, and no lock held while sending", es: "un cliente que no lee bloquea a todos: sendall hacia él espera, y algo compartido (un lock, el ciclo de accept) espera con él. Arreglo: un thread por cliente, y ningún lock tomado mientras se envía" },
    Hint { check: "mid-message-disconnect", cause: Cause::Usual, en: "a client leaving in the middle of a message makes recv return b'' (or raise ConnectionResetError) before the message is whole. Fix: when that happens, close that client's socket and end its thread; never let it stop the server", es: "un cliente que se va a medio mensaje hace que recv devuelva b'' (o lance ConnectionResetError) antes de completar el mensaje. Arreglo: en ese caso cierra el socket de ese cliente y termina su thread; nunca detengas el servidor" },
    Hint { check: "huge-header", cause: Cause::Usual, en: "a header announcing 4 GiB is trusted. Fix: check the length against a limit before reading the body, and close that client if it is over", es: "se confía en un encabezado que anuncia 4 GiB. Arreglo: compara el largo con un límite antes de leer el cuerpo, y cierra ese cliente si lo supera" },
    Hint { check: "memory-bounded", cause: Cause::Usual, en: "memory is reserved on the word of the length header (bytearray(n), recv(n) with a huge n). Fix: check the length against a limit, and read in chunks of at most 4096 bytes", es: "se reserva memoria confiando en el encabezado (bytearray(n), recv(n) con un n enorme). Arreglo: compara el largo con un límite, y lee en chunks de a lo más 4096 bytes" },
    Hint { check: "huge-file-header", cause: Cause::Usual, en: "memory is reserved on the word of a 0xFFFFFFFF header. Fix: check the size against a limit, and read (and write) in chunks of at most 4096 bytes", es: "se reserva memoria confiando en un encabezado 0xFFFFFFFF. Arreglo: compara el tamaño con un límite, y lee (y escribe) en chunks de a lo más 4096 bytes" },
    Hint { check: "large-file", cause: Cause::Usual, en: "the whole file is held in memory before it is written. Fix: write each chunk to the file as it arrives", es: "el archivo entero se guarda en memoria antes de escribirlo. Arreglo: escribe cada chunk en el archivo apenas llega" },
    Hint { check: "garbage", cause: Cause::Usual, en: "bytes that do not decode raise an exception that ends the server. Fix: catch the decoding error (json.JSONDecodeError, UnicodeDecodeError, pickle's) for that client only", es: "bytes que no se decodifican lanzan una excepción que termina el servidor. Arreglo: captura el error de decodificación (json.JSONDecodeError, UnicodeDecodeError, los de pickle) sólo para ese cliente" },
    Hint { check: "sent-0-bytes", cause: Cause::Usual, en: "an empty file still needs its header: send the 4-byte size (0) first, then nothing", es: "un archivo vacío igual necesita su encabezado: envía primero el tamaño de 4 bytes (0), y luego nada" },
    Hint { check: "sent-1-byte", cause: Cause::Usual, en: "the header must be 4 bytes, big-endian: size.to_bytes(4, byteorder='big')", es: "el encabezado debe ser de 4 bytes, big-endian: tamaño.to_bytes(4, byteorder='big')" },
    Hint { check: "sent-4096-bytes", cause: Cause::Usual, en: "the file was cut at one read or one send. Fix: read the file in a loop, and use sendall (send may send less than it is given)", es: "el archivo se cortó en una lectura o un envío. Arreglo: lee el archivo en un ciclo, y usa sendall (send puede enviar menos de lo que recibe)" },
    Hint { check: "sent-4097-bytes", cause: Cause::Usual, en: "the byte after a full chunk was lost: check the send loop's end condition (an off-by-one)", es: "se perdió el byte después de un chunk completo: revisa la condición de término del ciclo de envío (un error por uno)" },
    Hint { check: "sent-3-mib", cause: Cause::Usual, en: "send() may send only part of what it is given. Fix: use sendall, and send a header equal to the file's size in bytes", es: "send() puede enviar sólo parte de lo que recibe. Arreglo: usa sendall, y envía un encabezado igual al tamaño del archivo en bytes" },
    Hint { check: "line-sent", cause: Cause::Usual, en: "each typed line must go as one message: its 4-byte length, then its bytes (sendall)", es: "cada línea escrita debe ir como un mensaje: su largo de 4 bytes y luego sus bytes (sendall)" },
    Hint { check: "message-shown", cause: Cause::Usual, en: "the server's messages must be read and printed by a thread of their own, not after input() returns", es: "los mensajes del servidor deben leerse e imprimirse en un thread propio, no después de que input() retorne" },
    Hint { check: "first-peer-sends", cause: Cause::Usual, en: "a typed line must be sent to the other peer as one message (its length, then its bytes)", es: "una línea escrita debe enviarse al otro peer como un mensaje (su largo y luego sus bytes)" },
    Hint { check: "second-peer-sends", cause: Cause::Usual, en: "a typed line must be sent to the other peer as one message (its length, then its bytes)", es: "una línea escrita debe enviarse al otro peer como un mensaje (su largo y luego sus bytes)" },
    Hint { check: "first-peer-receives", cause: Cause::Usual, en: "the other peer's messages must be read and printed by a thread of their own", es: "los mensajes del otro peer deben leerse e imprimirse en un thread propio" },
    Hint { check: "second-peer-receives", cause: Cause::Usual, en: "the other peer's messages must be read and printed by a thread of their own", es: "los mensajes del otro peer deben leerse e imprimirse en un thread propio" },
];

/// The cause a failure of `check` with `reason` most likely has.
pub fn cause(check: Check, reason: &str) -> Cause {
    let name = check.name();
    let spin = reason.contains("spins") || reason.contains("b''");
    match name {
        "idle-cpu" => Cause::Spin,
        "server-closes" | "short-file" if spin => Cause::Spin,
        // The server's CPU after the client left (`verdict::after_leaving`).
        "mid-message-disconnect" | "slow-reader" if reason.contains("ms of CPU in") && spin => {
            Cause::Spin
        }
        // An answer came, but not the message: a server that replies.
        "one-message" if reason.contains("instead of") || reason.contains("differ from") => {
            Cause::Reply
        }
        // A header announcing fewer bytes than the line typed.
        "line-sent" if announces_fewer(reason) => Cause::CharLength,
        "byte-at-a-time"
        | "large-message"
        | "file-byte-at-a-time"
        | "small-file"
        | "shown-byte-at-a-time"
        | "long-message"
        | "ten-in-one-write"
        | "two-in-one-segment" => Cause::ShortRead,
        _ => Cause::Usual,
    }
}

/// Whether a reason says a header announced fewer bytes than a line typed
/// ("a 25-byte line was typed, and the header announces 23 bytes").
fn announces_fewer(reason: &str) -> bool {
    let number_after = |key: &str| -> Option<u64> {
        let rest = &reason[reason.find(key)? + key.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())?
            .parse()
            .ok()
    };
    match (number_after("a "), number_after("announces ")) {
        (Some(typed), Some(announced)) => announced < typed,
        _ => false,
    }
}

/// The hint for `check` failing with `cause`, in `lang`: the table's row,
/// or the check's `Usual` one; `None` if the table has neither.
pub fn text(check: Check, cause: Cause, lang: Lang) -> Option<String> {
    let row = HINTS
        .iter()
        .find(|h| h.check == check.name() && h.cause == cause)
        .or_else(|| {
            HINTS
                .iter()
                .find(|h| h.check == check.name() && h.cause == Cause::Usual)
        })?;
    let section = check.notes_section();
    Some(match lang {
        Lang::En => format!("{} (notes: \"{section}\")", row.en),
        Lang::Es => format!("{} (apuntes: «{section}»)", row.es),
    })
}

/// The hint for an outcome: failures only.
pub fn for_outcome(o: &Outcome, lang: Lang) -> Option<String> {
    if o.status != Status::Fail {
        return None;
    }
    text(o.check, cause(o.check, &o.reason), lang)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programs::ProgramCheck;

    #[test]
    fn every_check_has_a_hint_in_both_languages() {
        let all = Check::ALL
            .into_iter()
            .chain(ProgramCheck::ALL.into_iter().map(Check::Program));
        for c in all {
            for lang in [Lang::En, Lang::Es] {
                assert!(
                    text(c, Cause::Usual, lang).is_some() || text(c, cause(c, ""), lang).is_some(),
                    "{c}"
                );
            }
        }
    }

    #[test]
    fn a_short_read_names_the_loop_and_the_section() {
        let c = Check::ByteAtATime;
        let why = "got 0 bytes instead of 20 (first difference at byte 0)";
        assert_eq!(cause(c, why), Cause::ShortRead);
        let en = text(c, Cause::ShortRead, Lang::En).unwrap();
        assert!(
            en.contains("recv(4)") && en.contains("exactly n bytes"),
            "{en}"
        );
        assert!(en.ends_with("(notes: \"Envío de muchos datos\")"), "{en}");
        let es = text(c, Cause::ShortRead, Lang::Es).unwrap();
        assert!(
            es.contains("exactamente n bytes") && es.contains("«Envío de muchos datos»"),
            "{es}"
        );
    }

    #[test]
    fn a_spin_says_leave_the_loop_on_b_empty() {
        let why = "it spins: 99% CPU over 500 ms (limit 20%), still running 2000 ms after";
        for c in [ProgramCheck::ServerCloses, ProgramCheck::ShortFile] {
            assert_eq!(cause(Check::Program(c), why), Cause::Spin);
        }
        assert_eq!(cause(Check::IdleCpu, "99.0% of one core"), Cause::Spin);
        let en = text(Check::IdleCpu, Cause::Spin, Lang::En).unwrap();
        assert!(en.contains("leave the loop when recv returns b''"), "{en}");
        assert!(text(Check::IdleCpu, Cause::Spin, Lang::Es)
            .unwrap()
            .contains("sal del ciclo"));
    }

    #[test]
    fn a_spin_after_a_client_left_names_the_recv_loop() {
        let why =
            "a client left 496 bytes into a 1000-byte message; the next client was answered, \
                   but after the client left mid-message the server used 480 ms of CPU in 500 ms \
                   (96.0% of one core, limit 10%): something spins, most likely a loop that keeps \
                   calling recv() after it returned b''";
        for c in [Check::MidMessageDisconnect, Check::SlowReader] {
            assert_eq!(cause(c, why), Cause::Spin, "{c}");
            let en = text(c, cause(c, why), Lang::En).unwrap();
            assert!(en.contains("recv returns b''"), "{en}");
            assert!(
                en.ends_with(
                    "(notes: \"Servidor con manejo de múltiples clientes en forma concurrente\")"
                ),
                "{en}"
            );
            let es = text(c, cause(c, why), Lang::Es).unwrap();
            assert!(es.contains("recv devuelva b''"), "{es}");
            assert!(es.contains("«Servidor con manejo"), "{es}");
        }
        // The same checks failing on their conversation keep their usual hint.
        let wedged = "the next client: its answer: no answer within 5000 ms";
        assert_eq!(cause(Check::MidMessageDisconnect, wedged), Cause::Usual);
        assert_eq!(cause(Check::SlowReader, wedged), Cause::Usual);
    }

    #[test]
    fn an_answer_that_is_not_the_echo_suggests_expect_reply() {
        let c = Check::OneMessage;
        assert_eq!(
            cause(c, "got 56 bytes instead of 17 (first difference at byte 0)"),
            Cause::Reply
        );
        assert!(text(c, Cause::Reply, Lang::En)
            .unwrap()
            .contains("--expect reply"));
        assert_eq!(cause(c, "no answer within 2000 ms"), Cause::Usual);
    }

    #[test]
    fn a_header_shorter_than_the_line_is_a_character_count() {
        let c = Check::Program(ProgramCheck::LineSent);
        let why = "a 25-byte line was typed, and the header announces 23 bytes";
        assert_eq!(cause(c, why), Cause::CharLength);
        assert!(text(c, Cause::CharLength, Lang::En)
            .unwrap()
            .contains("len(text.encode())"));
        let more = "a 25-byte line was typed, and the header announces 9999999 bytes";
        assert_eq!(cause(c, more), Cause::Usual);
    }

    #[test]
    fn only_failures_get_a_hint() {
        let o = |status| Outcome {
            check: Check::IdleCpu,
            status,
            reason: "x".into(),
        };
        assert!(for_outcome(&o(Status::Fail), Lang::En).is_some());
        assert!(for_outcome(&o(Status::Pass), Lang::En).is_none());
        assert!(for_outcome(&o(Status::Skip), Lang::En).is_none());
    }
}

/*
 * Linked into every Windows test binary by .ci/windows-test: one WSAStartup,
 * from the CRT's initializers, before main and before any thread exists.
 *
 * Why: Rust's standard library starts Winsock lazily and without a lock.
 * Threads that make their first socket call at the same moment each call
 * WSAStartup, and all but one then call WSACleanup, as Windows allows: its
 * count is kept atomically. Wine 8.0 keeps the count with a plain load, add
 * and store, so two concurrent WSAStartups can count as one; the cleanups
 * then take the count to zero, wine closes every socket of the process, and
 * every later socket call fails with WSANOTINITIALISED (10093). Under wine
 * that failed a few runs in a hundred of a test binary whose tests open
 * sockets in parallel. With this reference taken first, a race would have
 * to lose two increments at once to bring the count to zero. Only for running the tests under wine:
 * the binaries trama ships are not built with it.
 */
#include <winsock2.h>

static void __cdecl winsock_first(void)
{
    WSADATA data;
    /* Failure is left for the program's own first socket call to report. */
    (void)WSAStartup(MAKEWORD(2, 2), &data);
}

/* .CRT$XCU: the C++ constructors' table, which mingw's startup runs. */
__attribute__((used, section(".CRT$XCU")))
static void (__cdecl *const winsock_first_entry)(void) = winsock_first;

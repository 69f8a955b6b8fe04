/*
 * bcryptprimitives.dll for wine versions that lack it (wine 8.0 among them).
 *
 * Rust's standard library (since 1.78) asks ProcessPrng in this DLL for
 * random bytes (HashMap seeds, among others); without the DLL no Rust program
 * starts under such a wine (status c0000135). This DLL exports ProcessPrng
 * and gets the bytes from RtlGenRandom (advapi32's SystemFunction036), which
 * wine has long had. Only for running the tests under wine: real Windows 10
 * and later ship their own bcryptprimitives.dll.
 */
#include <windows.h>

/* .ci/windows-setup looks for this to tell our DLL from one wine ships. */
__attribute__((used)) static const char marker[] = "trama bcryptprimitives shim";

/* RtlGenRandom; declared here rather than through ntsecapi.h's macro. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/*
 * Documented to always succeed and return TRUE; we return FALSE if
 * RtlGenRandom ever fails, rather than hand back bytes that are not random.
 */
BOOL WINAPI ProcessPrng(PBYTE pbData, SIZE_T cbData)
{
    /* SIZE_T is 64 bits and RtlGenRandom takes a ULONG: fill in chunks. */
    const SIZE_T chunk = 0x40000000;
    while (cbData > 0) {
        ULONG n = (ULONG)(cbData < chunk ? cbData : chunk);
        if (!SystemFunction036(pbData, n))
            return FALSE;
        pbData += n;
        cbData -= n;
    }
    return TRUE;
}

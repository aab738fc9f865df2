// STRATA_EXPORT marks what libstrata.so exports. The library is compiled with
// -fvisibility=hidden: only the C API (strata/strata.h) and the classes and functions of
// the public C++ API (include/strata/) carry this mark, everything under src/ stays
// internal. In the static library and in code that merely includes the headers it changes
// nothing.
#ifndef STRATA_EXPORT_H_
#define STRATA_EXPORT_H_

#if defined(__GNUC__) || defined(__clang__)
#define STRATA_EXPORT __attribute__((visibility("default")))
#else
#define STRATA_EXPORT
#endif

#endif  // STRATA_EXPORT_H_

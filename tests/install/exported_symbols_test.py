"""libstrata.so exports the C API and the public C++ API, and nothing else.

    exported_symbols_test.py LIBSTRATA_SO INCLUDE_DIR

Reads `nm -D --defined-only` of the library and the headers under INCLUDE_DIR/strata:
  - every function declared in strata.h is exported, and no other C (unmangled) symbol;
  - every exported C++ symbol belongs to a class, struct or function declared in a public
    header (strata::<public name>...), or is a weak instantiation of a standard-library
    template (libstdc++ gives those default visibility; they are harmless duplicates);
  - the core of the C++ API is there (BlockManager::Create, LoadConfig, Status, the
    RemoteStore interface's typeinfo), and internal classes are not.
Prints each problem; exits 1 when there is one.
"""
import glob
import re
import subprocess
import sys

lib, include_dir = sys.argv[1], sys.argv[2]
headers = {p: open(p).read() for p in glob.glob(f"{include_dir}/strata/*.h")}
c_api = headers[f"{include_dir}/strata/strata.h"]
declared_c = set(re.findall(r"STRATA_EXPORT[^;(]*?\b(strata_\w+)\s*\(", c_api))

public_names = set()
for text in headers.values():
    public_names.update(re.findall(r"\b(?:class|struct)\s+(?:STRATA_EXPORT\s+)?(\w+)", text))
    public_names.update(re.findall(r"STRATA_EXPORT\s[^;{]*?\b(\w+)\s*\(", text))
public_names.discard("STRATA_EXPORT")

def nm(*flags):
    out = subprocess.run(["nm", "-D", "--defined-only", *flags, lib], check=True,
                         capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3:
            rows.append((parts[1], parts[2]))
    return rows

raw = nm()
demangled = nm("-C")
assert len(raw) == len(demangled), "nm and nm -C disagree"
problems = []
exported_c = set()
cxx = []
for (kind, name), (_, pretty) in zip(raw, demangled):
    if name.startswith("_Z"):
        cxx.append((kind, pretty))
    elif name in ("_init", "_fini", "_edata", "_end", "__bss_start"):
        continue
    else:
        exported_c.add(name)

for name in sorted(declared_c - exported_c):
    problems.append(f"C API function declared in strata.h but not exported: {name}")
for name in sorted(exported_c - declared_c):
    problems.append(f"unmangled symbol exported but not declared in strata.h: {name}")

PREFIXES = ("typeinfo name for ", "typeinfo for ", "vtable for ", "VTT for ",
            "non-virtual thunk to ", "virtual thunk to ", "guard variable for ")
std_weak = 0
for kind, pretty in cxx:
    subject = pretty
    for p in PREFIXES:
        if subject.startswith(p):
            subject = subject[len(p):]
            break
    m = re.match(r"strata::(\w+)", subject)
    if m:
        if m.group(1) not in public_names:
            problems.append(f"exported C++ symbol of a non-public name '{m.group(1)}': {pretty}")
        continue
    weak = kind in ("W", "V", "u")
    # A standard-library template instantiated in Strata, possibly over Strata's types.
    if weak and re.match(r"(?:[\w:<>, ]+ )?(?:std|__gnu_cxx)::", subject):
        std_weak += 1
        continue
    problems.append(f"exported symbol outside the public API ({kind}): {pretty}")

names = "\n".join(p for _, p in cxx)
for required in ("strata::BlockManager::Create(", "strata::LoadConfig(", "strata::LoadConfigFromString(",
                 "strata::Status::WithContext(", "typeinfo for strata::RemoteStore",
                 "strata::KvLayout::Validate()", "strata::TransferHandle::Wait("):
    if required not in names:
        problems.append(f"public C++ API not exported: {required}")
for internal in ("strata::DiskTier", "strata::HostTier", "strata::BlockIndex", "strata::BlockMover",
                 "strata::FsStore", "strata::RedisStore", "strata::capi::", "strata::metrics::",
                 "toml::", "spdlog::", "fmt::"):
    pattern = re.compile(r"(?:%s)?%s(?!\w)" % ("|".join(PREFIXES), re.escape(internal)))
    for _, p in cxx:
        if pattern.match(p):
            problems.append(f"internal symbol exported: {p}")
            break

for p in problems:
    print("FAIL:", p)
print(f"{len(exported_c)} C functions, {len(cxx) - std_weak} C++ API symbols, "
      f"{std_weak} weak std:: instantiations; {len(problems)} problems")
sys.exit(1 if problems else 0)

"""Lets a shared object load where glibc or libstdc++ lack some symbol versions it names.

Usage: relax-versions.py FILE VERSION...

For each VERSION (say GLIBC_2.38), the version-needed entry is marked weak (VER_FLG_WEAK: the loader no longer
refuses the object when the version is missing) and every symbol that asked for it becomes unversioned
(VER_NDX_GLOBAL), so the loader binds it to whatever object defines the name: the compat library build.sh
adds in front. Edits FILE in place; sizes and offsets do not change. Python's standard library only.
"""
import struct
import sys

VER_FLG_WEAK = 0x2
VER_NDX_GLOBAL = 1


def main(path, versions):
    data = bytearray(open(path, 'rb').read())
    if data[:4] != b'\x7fELF' or data[4] != 2 or data[5] != 1:
        sys.exit(f'{path}: not a 64-bit little-endian ELF file')
    shoff, = struct.unpack_from('<Q', data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', data, 0x3a)
    sections = []
    for i in range(shnum):
        name, _type, _flags, _addr, off, size, _link, info, _align, _entsize = struct.unpack_from(
            '<IIQQQQIIQQ', data, shoff + i * shentsize)
        sections.append({'name': name, 'off': off, 'size': size, 'info': info})

    def cstr(off):
        return data[off:data.index(0, off)].decode()

    names = sections[shstrndx]['off']
    by_name = {cstr(names + s['name']): s for s in sections}
    dynstr = by_name['.dynstr']['off']

    # .gnu.version_r: Elf64_Verneed entries, each with Elf64_Vernaux entries (one per version needed).
    relaxed = {}
    need = by_name['.gnu.version_r']
    off = need['off']
    for _ in range(need['info']):
        _version, cnt, _file, aux, nxt = struct.unpack_from('<HHIII', data, off)
        aoff = off + aux
        for _ in range(cnt):
            _hash, flags, other, name, anext = struct.unpack_from('<IHHII', data, aoff)
            version = cstr(dynstr + name)
            if version in versions:
                struct.pack_into('<H', data, aoff + 4, flags | VER_FLG_WEAK)
                relaxed[other] = version
            aoff += anext
        if nxt == 0:
            break
        off += nxt
    missing = set(versions) - set(relaxed.values())
    if missing:
        sys.exit(f'{path}: does not need {", ".join(sorted(missing))}')

    # .gnu.version: one Elf64_Half per .dynsym entry (24 bytes each).
    symbols = by_name['.dynsym']
    versym = by_name['.gnu.version']['off']
    changed = []
    for i in range(symbols['size'] // 24):
        ndx, = struct.unpack_from('<H', data, versym + 2 * i)
        if ndx & 0x7fff in relaxed:
            struct.pack_into('<H', data, versym + 2 * i, VER_NDX_GLOBAL)
            st_name, = struct.unpack_from('<I', data, symbols['off'] + 24 * i)
            changed.append(f'{cstr(dynstr + st_name)} ({relaxed[ndx & 0x7fff]})')
    open(path, 'wb').write(data)
    print('unversioned:', ', '.join(sorted(changed)))


if __name__ == '__main__':
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], set(sys.argv[2:]))

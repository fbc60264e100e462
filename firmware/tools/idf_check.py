#!/usr/bin/env python3
"""idf_check.py - type-check the firmware against a real ESP-IDF tree.

No ESP-IDF toolchain is needed: the check generates sdkconfig.h from ESP-IDF's
Kconfig tree plus this project's Kconfig.projbuild and sdkconfig.defaults (with
Debian's python3-kconfiglib), then compiles every firmware source with ESP-IDF's
own warning flags and -Werror, once per target and per configuration:

  esp32c3 (RISC-V)  riscv64-unknown-elf-gcc -march=rv32imc_zicsr_zifencei -mabi=ilp32,
                    compiled to an object file (newlib headers from libnewlib-dev)
  esp32 (Xtensa)    no Xtensa compiler is packaged by Debian: arm-none-eabi-gcc
                    (32-bit, newlib, uint32_t == unsigned long like xtensa-esp32-elf-gcc)
                    with the Xtensa predefines, -fsyntax-only

What this proves and what it does not is written in firmware/README.md
("Checking against real ESP-IDF headers").

Usage: idf_check.py --idf IDF_PATH [--mqtt ESP_MQTT_PATH] [--targets esp32,esp32c3]
Exit 0 when every compile passed, 1 when one failed, 2 on a usage or setup error.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)

TARGETS = {
    'esp32': 'xtensa',
    'esp32c3': 'riscv',
}
ALL_TARGET_NAMES = ('esp32', 'esp32s2', 'esp32s3', 'esp32c2', 'esp32c3', 'esp32c5', 'esp32c6',
                    'esp32c61', 'esp32h2', 'esp32h21', 'esp32h4', 'esp32p4', 'esp32s31', 'linux')

# Configurations checked for every target: sdkconfig.defaults plus these lines.
CONFIGS = {
    # the two triggers, with sdkconfig.defaults as they are
    'first-boot': [],
    'button': ['CONFIG_CLAIM_TRIGGER_BUTTON=y'],
    # production-like: flash + NVS encryption (secure init of the factory
    # partition), private CA from NVS
    'secure': ['CONFIG_SECURE_FLASH_ENC_ENABLED=y', 'CONFIG_NVS_ENCRYPTION=y',
               'CONFIG_CLAIM_CA_PEM_NVS=y'],
    # private CA built into the image, button trigger
    'ca-embedded': ['CONFIG_CLAIM_TRIGGER_BUTTON=y', 'CONFIG_CLAIM_CA_PEM_EMBEDDED=y'],
    # DEBUG logs compiled in and on: the token must still stay out (the port
    # holds the chatty tags at INFO; its #error guard must not fire here)
    'debug-log': ['CONFIG_LOG_DEFAULT_LEVEL_DEBUG=y'],
}

# ESP-IDF's warning flags for every component (tools/cmake/build.cmake, v5.3 to
# v6.0), made errors: -Werror without ESP-IDF's -Wno-error=... exceptions.
IDF_WARNINGS = ['-Wall', '-Wextra', '-Wno-unused-parameter', '-Wno-sign-compare',
                '-Wno-enum-conversion', '-Werror']
IDF_DEFINES = ['-D_GNU_SOURCE', '-DESP_PLATFORM', '-D_POSIX_READER_WRITER_LOCKS',
               '-DIDF_VER="idf-check"']

# Components whose headers the firmware never reaches and that only add noise
# (or headers with the same name as another component's).
SKIP_COMPONENTS = {'bt', 'openthread', 'cmock', 'unity', 'idf_test', 'linux', 'ulp', 'esp_tee',
                   'bootloader', 'esp_gdbstub', 'espcoredump', 'app_trace', 'esp_trace',
                   'perfmon', 'protobuf-c', 'spiffs', 'fatfs', 'wpa_supplicant', 'ieee802154',
                   'tinyusb', 'esp_driver_cam', 'esp_hal_cam'}
EXAMPLES_COMMON = os.path.join('examples', 'common_components', 'protocol_examples_common')
SKIP_PARTS = {'examples', 'contrib', 'ports', 'docs', 'test', 'tests', 'test_apps', 'host_test', 'priv_include', 'private_include',
              'FreeRTOS-Kernel-SMP', 'mocks', 'test_gen_crt_bundle', 'esp_tee'}


def fail(msg):
    print('idf-check: ' + msg, file=sys.stderr)
    sys.exit(2)


def idf_version(idf):
    try:
        text = open(os.path.join(idf, 'tools', 'cmake', 'version.cmake')).read()
    except OSError:
        fail('%s is not an ESP-IDF tree (no tools/cmake/version.cmake)' % idf)
    parts = [re.search(r'IDF_VERSION_%s\s+(\d+)' % p, text) for p in ('MAJOR', 'MINOR', 'PATCH')]
    if not all(parts):
        fail('cannot read the ESP-IDF version from tools/cmake/version.cmake')
    return tuple(int(p.group(1)) for p in parts)


def include_dirs(idf, mqtt, target, arch):
    """Public include directories of ESP-IDF's components for one target."""
    other = set(ALL_TARGET_NAMES) - {target}
    other_arch = {'xtensa', 'riscv'} - {arch}
    dirs = []
    comps = os.path.join(idf, 'components')
    for comp in sorted(os.listdir(comps)):
        root = os.path.join(comps, comp)
        if comp in SKIP_COMPONENTS or not os.path.isdir(root):
            continue
        for dirpath, dirnames, _ in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            parts = [] if rel == '.' else rel.split(os.sep)
            keep = []
            for d in sorted(dirnames):
                if d in SKIP_PARTS or d in other or d in other_arch or d.startswith('.'):
                    continue
                if len(parts) >= 5:
                    continue
                keep.append(d)
            dirnames[:] = keep
            name = parts[-1] if parts else ''
            # everything under an include directory is reached through it
            if any(p in ('include', 'platform_include') for p in parts[:-1]):
                dirnames[:] = []
                continue
            if name in ('include', 'platform_include') or (comp == 'soc' and name == 'register'):
                dirs.append(dirpath)
    # FreeRTOS: the kernel and its port headers are also included without the
    # "freertos/" prefix, and the kernel of the IDF flavour (not -SMP) is used.
    fr = os.path.join(comps, 'freertos')
    dirs += [os.path.join(fr, 'config', 'include', 'freertos'),
             os.path.join(fr, 'FreeRTOS-Kernel', 'portable', arch, 'include', 'freertos')]
    # Third-party trees below components (submodules in ESP-IDF).
    dirs += [os.path.join(comps, 'lwip', 'lwip', 'src', 'include'),
             os.path.join(comps, 'mbedtls', 'mbedtls', 'include'),
             os.path.join(comps, 'mbedtls', 'mbedtls', 'tf-psa-crypto', 'include'),
             os.path.join(comps, 'mbedtls', 'mbedtls', 'tf-psa-crypto', 'drivers', 'builtin', 'include')]
    if mqtt:
        dirs.append(os.path.join(mqtt, 'include'))
    # main/idf_component.yml depends on it (demo networking)
    dirs.append(os.path.join(idf, EXAMPLES_COMMON, 'include'))
    seen, out = set(), []
    for d in dirs:
        if os.path.isdir(d) and d not in seen:
            seen.add(d)
            out.append(d)
    return out


def kconfig_sources(idf, mqtt, workdir):
    """The two files ESP-IDF's root Kconfig sources: every component's Kconfig
    and Kconfig.projbuild (ESP-IDF's, this project's, and esp-mqtt's)."""
    comps = sorted(glob.glob(os.path.join(idf, 'components', '*', '')))
    comps += [os.path.join(PROJECT, 'main', ''), os.path.join(idf, EXAMPLES_COMMON, '')]
    comps += sorted(glob.glob(os.path.join(PROJECT, 'components', '*', '')))
    if mqtt:
        comps.append(os.path.join(mqtt, ''))  # esp-mqtt keeps its Kconfig at its root
    kc, pb = [], []
    for c in comps:
        if os.path.isfile(c + 'Kconfig'):
            kc.append(c + 'Kconfig')
        if os.path.isfile(c + 'Kconfig.projbuild'):
            pb.append(c + 'Kconfig.projbuild')
    kc_file = os.path.join(workdir, 'kconfigs.in')
    pb_file = os.path.join(workdir, 'kconfigs_projbuild.in')
    with open(kc_file, 'w') as f:
        f.writelines('source "%s"\n' % k for k in kc)
    with open(pb_file, 'w') as f:
        f.writelines('source "%s"\n' % k for k in pb)
    return kc_file, pb_file


def gen_sdkconfig(idf, mqtt, target, version, extra_lines, workdir):
    """Writes workdir/sdkconfig.h (and workdir/sdkconfig) the way idf.py would
    for a fresh project: ESP-IDF defaults, then sdkconfig.defaults[.target],
    then extra_lines. Returns the path of the directory holding sdkconfig.h."""
    try:
        import kconfiglib
    except ImportError:
        fail('python3-kconfiglib is missing (apt-get install python3-kconfiglib)')
    # ESP-IDF v6 Kconfig files give menus a help text, which kconfiglib 14
    # does not expect: treat a missing help attribute as "no help yet".
    if not getattr(kconfiglib.Kconfig, '_idf_check_patched', False):
        orig = kconfiglib.Kconfig._parse_help

        def parse_help(self, node):
            try:
                node.help
            except AttributeError:
                node.help = None
            return orig(self, node)
        kconfiglib.Kconfig._parse_help = parse_help
        kconfiglib.Kconfig._idf_check_patched = True

    kc_file, pb_file = kconfig_sources(idf, mqtt, workdir)
    env = {
        'IDF_PATH': idf, 'IDF_TARGET': target,
        'COMPONENT_KCONFIGS_SOURCE_FILE': kc_file,
        'COMPONENT_KCONFIGS_PROJBUILD_SOURCE_FILE': pb_file,
        'COMPONENT_KCONFIGS_EXCLUDED_SOURCE_FILE': os.path.join(workdir, 'none.in'),
        'COMPONENT_KCONFIGS_PROJBUILD_EXCLUDED_SOURCE_FILE': os.path.join(workdir, 'none.in'),
        'IDF_ENV_FPGA': '', 'IDF_CI_BUILD': '', 'IDF_TOOLCHAIN': 'gcc',
        'IDF_INIT_VERSION': '%d.%d.%d' % version, 'IDF_MINIMAL_BUILD': 'n',
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    cwd = os.getcwd()
    try:
        os.chdir(idf)
        kconf = kconfiglib.Kconfig('Kconfig', warn=True, warn_to_stderr=False)
        defaults = [os.path.join(PROJECT, 'sdkconfig.defaults'),
                    os.path.join(PROJECT, 'sdkconfig.defaults.' + target)]
        frag = os.path.join(workdir, 'sdkconfig.fragment')
        with open(frag, 'w') as f:
            f.writelines(line + '\n' for line in extra_lines)
        for d in defaults + [frag]:
            if os.path.isfile(d):
                kconf.load_config(d, replace=False)
        # A line that did not take (unknown symbol, unmet dependency) is a
        # mistake in the project's configuration, not something to ignore. A
        # later file may override an earlier one: the last assignment counts.
        wanted = {}
        for d in defaults + [frag]:
            if not os.path.isfile(d):
                continue
            for line in open(d):
                m = re.match(r'^CONFIG_(\w+)=(.*)$', line.strip())
                if not m:
                    continue
                sym = kconf.syms.get(m.group(1))
                if sym is not None and sym.choice is not None and m.group(2) == 'y':
                    # selecting one member of a choice deselects the others
                    for other in sym.choice.syms:
                        wanted.pop(other.name, None)
                wanted[m.group(1)] = (os.path.basename(d), m.group(2).strip('"'))
        bad = []
        for name, (fname, want) in sorted(wanted.items()):
            sym = kconf.syms.get(name)
            if sym is None:
                bad.append('%s: unknown option CONFIG_%s' % (fname, name))
            elif sym.str_value != want:
                bad.append('%s: CONFIG_%s=%s did not take (now "%s")' % (fname, name, want, sym.str_value))
        kconf.write_config(os.path.join(workdir, 'sdkconfig'))
        out = os.path.join(workdir, 'config')
        os.makedirs(out, exist_ok=True)
        kconf.write_autoconf(os.path.join(out, 'sdkconfig.h'))
    finally:
        os.chdir(cwd)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out, bad


def compilers():
    return {
        'riscv': shutil.which('riscv64-unknown-elf-gcc'),
        'xtensa': shutil.which('arm-none-eabi-gcc'),
    }


def libc_includes(cc, triple, sdkconfig_h):
    """-nostdinc plus the compiler's own headers and the C library ESP-IDF is
    configured with: newlib (v5.x) or picolibc (the v6 default)."""
    text = open(sdkconfig_h).read()
    if re.search(r'^#define CONFIG_LIBC_PICOLIBC 1$', text, re.M):
        libc = '/usr/lib/picolibc/%s/include' % triple
        pkg = 'picolibc-%s' % triple
        # Debian's picolibc 1.8 stdio.h does not declare ssize_t, which ESP-IDF
        # v6's stdio.h wrapper uses (the newer picolibc of ESP-IDF's toolchain does).
        shim = ['-include', 'sys/types.h']
    else:
        libc = '/usr/include/newlib'
        pkg = 'libnewlib-dev'
        shim = []
    if not os.path.isfile(os.path.join(libc, 'stdio.h')):
        fail('no C library headers in %s: apt-get install %s' % (libc, pkg))
    gcc_inc = subprocess.run([cc, '-print-file-name=include'], stdout=subprocess.PIPE,
                             text=True).stdout.strip()
    return ['-nostdinc', '-isystem', gcc_inc, '-isystem', gcc_inc + '-fixed', '-isystem', libc] + shim


def compile_cmd(arch, cc, version, src, incs, obj, sdkconfig_h):
    std = '-std=gnu17' if version[0] < 6 else '-std=gnu2x'  # v6 uses gnu23; gcc 12 calls it gnu2x
    common = [std] + IDF_WARNINGS + IDF_DEFINES + ['-ffunction-sections', '-fdata-sections', '-Og']
    if arch == 'riscv':
        return [cc, '-march=rv32imc_zicsr_zifencei', '-mabi=ilp32'] + \
            libc_includes(cc, 'riscv64-unknown-elf', sdkconfig_h) + common + \
            ['-I' + d for d in incs] + ['-c', src, '-o', obj]
    # Xtensa stand-in: ARM's newlib toolchain, Xtensa's predefines, no ARM ones
    return [cc, '-mcpu=cortex-m4', '-mthumb', '-U__arm__', '-U__ARM_ARCH', '-U__thumb__',
            '-U__ARMEL__', '-D__XTENSA__=1', '-D__xtensa__=1', '-D__XTENSA_EL__=1',
            '-D__XTENSA_WINDOWED_ABI__=1'] + libc_includes(cc, 'arm-none-eabi', sdkconfig_h) + \
        common + ['-I' + d for d in incs] + ['-fsyntax-only', src]


def sources():
    srcs = [os.path.join(PROJECT, 'main', 'app_main.c')]
    srcs += sorted(glob.glob(os.path.join(PROJECT, 'components', 'claim_port_idf', '*.c')))
    srcs += sorted(glob.glob(os.path.join(PROJECT, 'components', 'claim_core', 'src', '*.c')))
    return srcs


def project_includes():
    return [os.path.join(PROJECT, 'main'),
            os.path.join(PROJECT, 'components', 'claim_core', 'include'),
            os.path.join(PROJECT, 'components', 'claim_port_idf', 'include')]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--idf', required=True, help='ESP-IDF tree (with its submodules)')
    ap.add_argument('--mqtt', default='', help='esp-mqtt tree (needed for ESP-IDF v6, where MQTT left ESP-IDF)')
    ap.add_argument('--targets', default='esp32,esp32c3')
    ap.add_argument('--work', default=os.path.join(PROJECT, 'build', 'idf-check'))
    ap.add_argument('-v', '--verbose', action='store_true')
    args = ap.parse_args()

    idf = os.path.abspath(args.idf)
    version = idf_version(idf)
    mqtt = os.path.abspath(args.mqtt) if args.mqtt else ''
    builtin_mqtt = os.path.join(idf, 'components', 'mqtt', 'esp-mqtt')
    if not mqtt:
        if os.path.isfile(os.path.join(builtin_mqtt, 'include', 'mqtt_client.h')):
            mqtt = builtin_mqtt
        else:
            fail('ESP-IDF v%d.%d.%d has no esp-mqtt in components/mqtt/esp-mqtt: pass MQTT_PATH=<esp-mqtt tree>' % version)
    if not os.path.isfile(os.path.join(mqtt, 'include', 'mqtt_client.h')):
        fail('%s is not an esp-mqtt tree (no include/mqtt_client.h)' % mqtt)
    for sub in ('lwip/lwip/src/include/lwip/sockets.h', 'mbedtls/mbedtls/include/mbedtls/ssl.h'):
        if not os.path.isfile(os.path.join(idf, 'components', sub)):
            fail('ESP-IDF tree without its submodules (no components/%s): run git submodule update --init' % sub)
    ccs = compilers()
    targets = [t.strip() for t in args.targets.split(',') if t.strip()]
    for t in targets:
        if t not in TARGETS:
            fail('unknown target %s (known: %s)' % (t, ', '.join(TARGETS)))
        if not ccs[TARGETS[t]]:
            fail('no compiler for %s: apt-get install %s' % (
                t, 'gcc-riscv64-unknown-elf libnewlib-dev' if TARGETS[t] == 'riscv'
                else 'gcc-arm-none-eabi libnewlib-arm-none-eabi'))

    print('idf-check: ESP-IDF v%d.%d.%d at %s' % (version + (idf,)))
    print('idf-check: esp-mqtt at %s' % mqtt)
    passed = failed = 0
    os.makedirs(args.work, exist_ok=True)
    for target in targets:
        arch = TARGETS[target]
        incs = project_includes() + include_dirs(idf, mqtt, target, arch)
        for cname, lines in CONFIGS.items():
            work = os.path.join(args.work, 'v%d.%d.%d' % version, target, cname)
            os.makedirs(work, exist_ok=True)
            cfgdir, bad = gen_sdkconfig(idf, mqtt, target, version, lines, work)
            label = '%s %s' % (target, cname)
            if bad:
                failed += 1
                print('FAIL %s: sdkconfig' % label)
                for b in bad:
                    print('    ' + b)
                continue
            for src in sources():
                obj = os.path.join(work, os.path.basename(src) + '.o')
                cmd = compile_cmd(arch, ccs[arch], version, src, [cfgdir] + incs, obj,
                                  os.path.join(cfgdir, 'sdkconfig.h'))
                if args.verbose:
                    print(' '.join(cmd))
                r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                rel = os.path.relpath(src, PROJECT)
                if r.returncode == 0:
                    passed += 1
                    print('ok   %s: %s' % (label, rel))
                else:
                    failed += 1
                    print('FAIL %s: %s' % (label, rel))
                    print('\n'.join('    ' + l for l in r.stdout.splitlines()[:60]))
    print('idf-check v%d.%d.%d: %d passed, %d failed' % (version + (passed, failed)))
    return 0 if failed == 0 else 1


if __name__ == '__main__':
    sys.exit(main())

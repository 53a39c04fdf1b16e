// The interpreter half of the virtual MicroPython board (sim/board.py): one long-lived Node process that runs the
// official MicroPython webassembly port (npm @micropython/micropython-webassembly-pyscript) and executes the code
// the board's REPL state machine hands it.
//
// Why a separate process: the REPL protocol (friendly REPL, raw REPL, raw-paste flow control, Ctrl-C, soft reset)
// lives in Python beside the pty, where it can be tested and kept byte exact; this file only has to be a faithful
// interpreter with a filesystem. Killing this process is how the board emulates Ctrl-C during a busy loop (the wasm
// interpreter runs synchronously and cannot be interrupted from outside).
//
// Usage: node board_runtime.mjs <micropython.mjs> <host state dir> boot|noboot
//
// Wire protocol (binary safe, both directions): one frame = 1 ASCII kind byte + u32 big-endian length + payload.
//   host -> runtime: 'X' code   run code in file mode (raw REPL), globals persist in __main__
//                    'S' code   run code in single mode (friendly REPL: expression values are printed)
//                    'Z' "main"|"" soft reset: fresh interpreter, same filesystem; runs boot.py, and main.py if "main"
//   runtime -> host: 'R' JSON   ready: {"version": sys.version, "machine": sys.implementation._machine}
//                    'O' bytes  output (stdout and stderr, as one UART would carry them), streamed while code runs
//                    'E' text   the uncaught exception's traceback (lines end in \r\n), sent before 'D'
//                    'D' JSON   done: {"exit": true} when the code raised SystemExit (the board then soft-resets)
// The filesystem lives in the interpreter's in-memory FS and is mirrored to the host state dir after every request,
// so that a restarted runtime (Ctrl-C, crash) and the host's tests see the same files.

import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [modulePath, hostDir, bootMode] = process.argv.slice(2);
const { loadMicroPython } = await import(pathToFileURL(modulePath).href);

// Emscripten errno values (what the wasm port's OSError carries) mapped to the Linux values real MicroPython ports
// use, so that tracebacks read "OSError: [Errno 2] ENOENT" as on a board, which mpremote maps back to host errors.
const ERRNO_TO_MICROPYTHON = {
  44: 2, 20: 17, 54: 20, 31: 21, 28: 22, 55: 39, 2: 13, 8: 9, 51: 28, 63: 1, 29: 5, 10: 16, 75: 18, 37: 36,
  69: 30, 33: 24, 6: 11, 48: 12, 22: 27,
};

// Injected at every (re)start as module `_board`; native on real boards, emulated here. Its frames are hidden from
// tracebacks (SHIM_DIR below), as native functions have no Python frames on a board.
const BOARD_SHIM = `
import builtins
import os

_ERRNO = ${JSON.stringify(ERRNO_TO_MICROPYTHON).replace(/"/g, "")}


def _board_errno(fn):
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OSError as err:
            code = err.args[0] if err.args else None
            if code in _ERRNO:
                raise OSError(_ERRNO[code])
            raise
    return call


for _name in ("stat", "listdir", "mkdir", "rmdir", "remove", "unlink", "rename", "chdir", "statvfs", "getcwd"):
    if hasattr(os, _name):
        setattr(os, _name, _board_errno(getattr(os, _name)))
builtins.open = _board_errno(builtins.open)

_ilistdir = _board_errno(os.ilistdir)


def _ilistdir_with_size(path=""):
    # littlefs/FAT ports yield (name, type, inode, size); the wasm VFS omits the size, which mpremote ls prints.
    entries = list(_ilistdir(path) if path else _ilistdir())
    prefix = path.rstrip("/") + "/" if path else ""
    result = []
    for entry in entries:
        size = os.stat(prefix + entry[0])[6] if entry[1] == 0x8000 else 0
        result.append((entry[0], entry[1], entry[2], size))
    return iter(result)


os.ilistdir = _ilistdir_with_size

_stat = os.stat


def _stat_empty_is_cwd(path):
    # On a board's VFS the empty path is the current directory (mpremote "cp -r dir :" relies on it).
    return _stat(path or os.getcwd())


os.stat = _stat_empty_is_cwd


def exec_single(source):
    import __main__
    exec(compile(source, "<stdin>", "single"), __main__.__dict__)
`;

// The 'machine' module the wasm port lacks, reduced to what host tools use (soft_reset as on a board: SystemExit).
const MACHINE_SHIM = `
import time

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


def soft_reset():
    raise SystemExit


def reset():
    # A virtual board has no hard reset; it behaves as soft_reset (interpreter restarted, filesystem kept).
    raise SystemExit


def reset_cause():
    return SOFT_RESET


def unique_id():
    return b"\\x5e\\xd9\\xe0\\x00\\x00\\x01"


def freq(hz=None):
    return 125000000


def idle():
    pass


class RTC:
    def datetime(self, value=None):
        if value is not None:
            raise OSError(95)
        t = time.localtime()
        return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
`;

const SHIM_DIR = "/__board_shim__";

let output = [];
function sendFrame(kind, payload) {
  const header = Buffer.alloc(5);
  header.write(kind, 0, "latin1");
  header.writeUInt32BE(payload.length, 1);
  writeAll(Buffer.concat([header, payload]));
}
function writeAll(buffer) {
  let offset = 0;
  while (offset < buffer.length) {
    try {
      offset += fs.writeSync(1, buffer, offset);
    } catch (error) {
      if (error.code !== "EAGAIN") throw error;
    }
  }
}
function flushOutput() {
  if (output.length) {
    sendFrame("O", Buffer.from(output));
    output = [];
  }
}
function onOutput(bytes) {
  for (const byte of bytes) output.push(byte);
  // Stream line by line (and in bounded chunks) so a long-running program's output reaches the pty while it runs.
  if (bytes.includes(10) || output.length >= 1024) flushOutput();
}

// ---- filesystem: interpreter FS <-> host mirror -----------------------------------------------------------------
let mirrored = new Map(); // interpreter path -> Buffer (file) or null (directory), as last written to the host

function removeTree(FS, node) {
  const stat = FS.lstat(node);
  if (FS.isDir(stat.mode)) {
    for (const name of FS.readdir(node)) if (name !== "." && name !== "..") removeTree(FS, `${node}/${name}`);
    FS.rmdir(node);
  } else {
    FS.unlink(node);
  }
}

function emptyRoot(FS) {
  // A board's flash starts empty; Emscripten's default /home, /tmp, /dev and /proc would show up in `mpremote ls`.
  for (const dir of ["/home", "/tmp", "/dev"]) removeTree(FS, dir);
  for (const dir of ["/proc/self/fd", "/proc/self", "/proc"]) FS.rmdir(dir);
  const left = FS.readdir("/").filter((name) => name !== "." && name !== "..");
  if (left.length) throw new Error(`could not empty the interpreter's root directory: ${left.join(", ")}`);
}

function loadFromHost(FS) {
  mirrored = new Map();
  const walk = (hostPath, boardPath) => {
    for (const entry of fs.readdirSync(hostPath, { withFileTypes: true })) {
      const source = path.join(hostPath, entry.name);
      const target = boardPath === "/" ? `/${entry.name}` : `${boardPath}/${entry.name}`;
      if (entry.isDirectory()) {
        FS.mkdir(target);
        mirrored.set(target, null);
        walk(source, target);
      } else if (entry.isFile()) {
        const data = fs.readFileSync(source);
        FS.writeFile(target, data);
        const mtime = fs.statSync(source).mtimeMs;
        FS.utime(target, mtime, mtime);
        mirrored.set(target, data);
      }
    }
  };
  walk(hostDir, "/");
}

function syncToHost(FS) {
  const current = new Map();
  const walk = (boardPath) => {
    for (const name of FS.readdir(boardPath)) {
      if (name === "." || name === "..") continue;
      const child = boardPath === "/" ? `/${name}` : `${boardPath}/${name}`;
      if (child === SHIM_DIR) continue;
      const stat = FS.lstat(child);
      if (FS.isDir(stat.mode)) {
        current.set(child, null);
        walk(child);
      } else if (FS.isFile(stat.mode)) {
        current.set(child, Buffer.from(FS.readFile(child)));
      }
    }
  };
  walk("/");
  const gone = [...mirrored.keys()].filter((p) => !current.has(p) || (current.get(p) === null) !== (mirrored.get(p) === null));
  for (const p of gone.sort().reverse()) fs.rmSync(path.join(hostDir, p), { recursive: true, force: true });
  for (const [p, data] of [...current.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const target = path.join(hostDir, p);
    const before = mirrored.get(p);
    if (data === null) {
      if (before !== null || !mirrored.has(p)) fs.mkdirSync(target, { recursive: true });
    } else if (!(before instanceof Buffer) || !before.equals(data)) {
      fs.writeFileSync(target, data);
    }
  }
  mirrored = current;
}

// ---- interpreter ----------------------------------------------------------------------------------------------
function traceback(error) {
  if (error?.name !== "PythonError") return `RuntimeError: virtual board interpreter failed: ${error?.stack ?? error}\n`;
  return String(error.message);
}

function hostTraceback(text) {
  // Hide the shim's frames (natives on a real board) and use the board's line endings.
  return text
    .split("\n")
    .filter((line) => !line.startsWith(`  File "${SHIM_DIR}/`))
    .join("\n")
    .replace(/\r?\n/g, "\r\n");
}

async function boot(runScripts, runMain) {
  // stdin: EOF. Without it the port reads this process's stdin, which carries the frame protocol; a program
  // reading stdin (sys.stdin.read gets "", input() waits) is not modelled, Ctrl-C ends such a wait.
  const mp = await loadMicroPython({ linebuffer: false, stdout: onOutput, stderr: onOutput, stdin: () => null });
  emptyRoot(mp.FS);
  loadFromHost(mp.FS);
  mp.FS.mkdir(SHIM_DIR);
  mp.FS.writeFile(`${SHIM_DIR}/_board.py`, BOARD_SHIM);
  mp.FS.writeFile(`${SHIM_DIR}/machine.py`, MACHINE_SHIM);
  mp.runPython(
    `__import__("sys").path.insert(0, "${SHIM_DIR}")\n__import__("_board")\n__import__("machine")\n` +
      `__import__("sys").path.pop(0)\n`,
  );
  removeTree(mp.FS, SHIM_DIR);
  let exit = false;
  if (runScripts) {
    for (const script of runMain ? ["boot.py", "main.py"] : ["boot.py"]) {
      if (!mirrored.has(`/${script}`)) continue;
      try {
        mp.runPython(`exec(open("${script}").read())`);
      } catch (error) {
        if (error?.type === "SystemExit") {
          exit = true;
          break;
        }
        onOutput(Buffer.from(hostTraceback(traceback(error)), "utf8"));
      }
    }
  }
  return { mp, exit };
}

let { mp } = await boot(bootMode === "boot", false);
flushOutput();
const version = mp.pyimport("sys").version;
sendFrame("R", Buffer.from(JSON.stringify({ version, machine: "JS with Emscripten" })));

async function handle(kind, payload) {
  let exit = false;
  let error = null;
  if (kind === "X" || kind === "S") {
    const code = payload.toString("utf8");
    try {
      if (kind === "X") mp.runPython(code);
      else mp.pyimport("_board").exec_single(code);
    } catch (caught) {
      if (caught?.type === "SystemExit") exit = true;
      else error = caught;
    }
    flushOutput();
    if (error !== null) sendFrame("E", Buffer.from(hostTraceback(traceback(error)), "utf8"));
    syncToHost(mp.FS);
    if (error !== null && error?.name !== "PythonError") {
      // The wasm instance aborted (e.g. out of memory): start a fresh one on the mirrored filesystem.
      ({ mp } = await boot(false, false));
    }
  } else if (kind === "Z") {
    syncToHost(mp.FS);
    ({ mp } = await boot(true, payload.toString("utf8") === "main"));
    flushOutput();
    syncToHost(mp.FS);
  } else {
    throw new Error(`unknown request kind ${JSON.stringify(kind)}`);
  }
  sendFrame("D", Buffer.from(JSON.stringify({ exit })));
}

let pending = Buffer.alloc(0);
let queue = Promise.resolve();
process.stdin.on("data", (chunk) => {
  pending = Buffer.concat([pending, chunk]);
  while (pending.length >= 5) {
    const length = pending.readUInt32BE(1);
    if (pending.length < 5 + length) break;
    const kind = pending.toString("latin1", 0, 1);
    const payload = pending.subarray(5, 5 + length);
    pending = pending.subarray(5 + length);
    queue = queue.then(() => handle(kind, payload));
  }
});
process.stdin.on("end", () => queue.then(() => process.exit(0)));

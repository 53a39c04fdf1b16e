// Runs firmware/tests/test_*.py under the official MicroPython webassembly port (npm
// @micropython/micropython-webassembly-pyscript) on Node. Usage: node run_tests.mjs <micropython.mjs> [test ...]
// Copies firmware/esltag and firmware/tests into the interpreter's filesystem, runs tests/runner.py, and exits 1
// when any test failed or the interpreter raised.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const [modulePath, ...only] = process.argv.slice(2);
const { loadMicroPython } = await import(pathToFileURL(modulePath).href);
let output = "";
const mp = await loadMicroPython({
  stdout: (line) => { output += line + "\n"; process.stdout.write(line + "\n"); },
  stderr: (line) => process.stderr.write(line + "\n"),
});

function copyTree(src, dst) {
  mp.FS.mkdirTree(dst);
  for (const name of readdirSync(src, { withFileTypes: true })) {
    if (name.isDirectory() && name.name !== "__pycache__") copyTree(join(src, name.name), `${dst}/${name.name}`);
    else if (name.isFile() && name.name.endsWith(".py")) mp.FS.writeFile(`${dst}/${name.name}`, readFileSync(join(src, name.name)));
  }
}
copyTree(join(here, "esltag"), "/fw/esltag");
copyTree(join(here, "tests"), "/fw/tests");

const tests = (only.length ? only : readdirSync(join(here, "tests")).filter((n) => /^test_.*\.py$/.test(n)).sort())
  .map((n) => n.replace(/\.py$/, ""));
let failed = 1;
try {
  mp.runPython(
    "import sys\nsys.path.insert(0, '/fw/tests')\nsys.path.insert(0, '/fw')\n" +
    "print('interpreter:', sys.implementation.name, sys.version)\n" +
    "import runner\n_failed = runner.run(" + JSON.stringify(tests) + ")\n",
  );
  failed = mp.globals.get("_failed");
} catch (error) {
  process.stdout.write(String(error.message ?? error) + "\n0 passed, 1 failed\n");
}
process.exit(failed === 0 && /\d+ passed, 0 failed\n$/.test(output) ? 0 : 1);

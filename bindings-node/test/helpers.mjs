// Shared by the tests: temporary projects that depend on this package, and
// the code blocks of the README.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { execFile } from 'node:child_process'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

export const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..')
export const repoDir = resolve(pkgDir, '..')
const run = promisify(execFile)

/** A temporary directory removed after the test. */
export function tempDir(t, prefix = 'dmrs-node-') {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A project directory in which `docker-machine-rs` resolves to this package. */
export function tempProject(t) {
  const dir = tempDir(t, 'dmrs-project-')
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(pkgDir, join(dir, 'node_modules', 'docker-machine-rs'), 'dir')
  return dir
}

/** Run `code` as file `name` of `project` with Node; resolves with its output. */
export async function runNode(project, name, code, env = {}) {
  writeFileSync(join(project, name), code)
  return run(process.execPath, [name], {
    cwd: project,
    env: { ...process.env, ...env },
    timeout: 600_000,
    maxBuffer: 16 * 1024 * 1024,
  })
}

/** The README's code block that follows the marker `<!-- example: NAME -->`. */
export function readmeExample(name) {
  const text = readFileSync(join(pkgDir, 'README.md'), 'utf8')
  const m = new RegExp(`<!-- example: ${name} -->\\s*\`\`\`js\\n([\\s\\S]*?)\`\`\``).exec(text)
  if (!m) throw new Error(`README.md has no example ${name}`)
  return m[1]
}

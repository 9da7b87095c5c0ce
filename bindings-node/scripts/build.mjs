#!/usr/bin/env node
// Builds the native addon: `cargo build -p bindings-node` in the workspace's
// target directory (CARGO_TARGET_DIR when set), dev profile unless --release,
// then copies the library next to package.json as
// docker-machine-rs.<platform>.node and, when @napi-rs/cli is installed,
// regenerates index.d.ts and index.js from the types the build recorded.
//
// `napi build` is not used for the compile step because it always passes
// `--target <host triple>`, which makes cargo build every dependency a second
// time under target/<triple>/ instead of sharing the workspace's build.
import { execFileSync, spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'))
const binaryName = pkg.napi.binaryName
const release = process.argv.includes('--release')
// CI is set when the variable exists and, trimmed, is not empty, "0" or
// "false" (any case): the rule of the tests (scripts/README.md).
const ciValue = (process.env.CI ?? '').trim()
const ci = process.env.CI !== undefined && !(ciValue === '' || ciValue === '0' || ciValue.toLowerCase() === 'false')
const locked = process.argv.includes('--locked') || ci

function fail(message) {
  console.error(`docker-machine-rs build: ${message}`)
  process.exit(1)
}

let targetDir = process.env.CARGO_TARGET_DIR
if (!targetDir) {
  const meta = JSON.parse(
    execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], { cwd: pkgDir, encoding: 'utf8' }),
  )
  targetDir = meta.target_directory
}
targetDir = resolve(pkgDir, targetDir)

// napi-derive writes the TypeScript declarations of the crate into this folder
// while it compiles; a fixed folder lets an up-to-date build skip compiling.
const typeDefDir = join(targetDir, 'napi-rs', 'bindings-node-type-def')
mkdirSync(typeDefDir, { recursive: true })
const env = { ...process.env, NAPI_TYPE_DEF_TMP_FOLDER: typeDefDir }
if (!existsSync(join(typeDefDir, 'bindings-node'))) env.NAPI_FORCE_BUILD_BINDINGS_NODE = String(Date.now())

const cargoArgs = ['build', '-p', 'bindings-node', '--target-dir', targetDir]
if (release) cargoArgs.push('--release')
if (locked) cargoArgs.push('--locked')
console.error(`docker-machine-rs build: cargo ${cargoArgs.join(' ')}`)
const built = spawnSync('cargo', cargoArgs, { cwd: pkgDir, env, stdio: 'inherit' })
if (built.error) fail(`cannot run cargo (${built.error.message}); a Rust toolchain is needed to build the addon`)
if (built.status !== 0) fail(`cargo exited with status ${built.status}`)

let cli = null
try {
  cli = await import('@napi-rs/cli')
} catch {
  // Installed as a dependency of another package: no dev dependencies, so the
  // committed index.js and index.d.ts are used as they are.
}

const hostTriple = /^host: (\S+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))?.[1]
if (!hostTriple) fail('cannot read the host triple from `rustc -vV`')
const platformArchABI = cli
  ? cli.parseTriple(hostTriple).platformArchABI
  : [process.platform, process.arch, process.platform === 'linux' ? (hostTriple.endsWith('musl') ? 'musl' : 'gnu') : process.platform === 'win32' ? 'msvc' : null]
      .filter(Boolean)
      .join('-')

const libFile = { darwin: 'libbindings_node.dylib', win32: 'bindings_node.dll' }[process.platform] ?? 'libbindings_node.so'
const src = join(targetDir, release ? 'release' : 'debug', libFile)
const dest = join(pkgDir, `${binaryName}.${platformArchABI}.node`)
// Copy then rename: a process that has the old addon loaded keeps its file.
copyFileSync(src, `${dest}.tmp`)
renameSync(`${dest}.tmp`, dest)
console.error(`docker-machine-rs build: ${dest}`)

if (cli) {
  const { exports, dts } = await cli.generateTypeDef({
    typeDefDir,
    cwd: pkgDir,
    configDtsHeaderFile: pkg.napi.dtsHeaderFile,
  })
  if (!dts) fail(`no type definitions were recorded in ${typeDefDir}`)
  // The Rust wrapper types are named JsStore, JsMachine...; the declarations
  // list those names as aliases of the exported ones. Keep only what the
  // addon really exports.
  const native = createRequire(import.meta.url)(dest)
  const aliases = exports.filter((name) => !(name in native))
  const cleaned = aliases.reduce(
    (text, name) => text.replace(new RegExp(`^export type ${name} = \\w+\\n`, 'm'), ''),
    dts,
  )
  writeFileSync(join(pkgDir, 'index.d.ts'), cleaned)
  await cli.writeJsBinding({
    platform: true,
    idents: exports.filter((name) => name in native),
    binaryName,
    packageName: pkg.name,
    version: pkg.version,
    outputDir: pkgDir,
    format: 'commonjs',
  })
}

// Test hosts for the end-to-end tests (scripts/testhosts.sh).
//
// The contract is the one of the Rust crate machine-test-support and of
// bindings-python/tests/_testhosts.py (documented in scripts/README.md):
//
// - the suites' host indices come from test-support/hosts.json;
// - MT_HOSTS, MT_HOST_NAMES, MT_KEY, MT_STATE and MT_SUDO_USER (default
//   mtuser) announce the hosts, as printed by `scripts/testhosts.sh env`;
// - when a suite's hosts are missing its tests fail if CI is set, and are
//   skipped otherwise; CI is set when the variable exists and its value,
//   trimmed, is neither empty nor "0" nor "false" (any case).
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const ALLOCATION_PATH = fileURLToPath(new URL('../../test-support/hosts.json', import.meta.url))
export const DEFAULT_SUDO_USER = 'mtuser'

/** Whether CI is set: present, and not empty, "0" or "false" (any case) once trimmed. */
export function ciIsSet(env = process.env) {
  const value = env.CI
  if (value === undefined) return false
  const v = value.trim()
  return !(v === '' || v === '0' || v.toLowerCase() === 'false')
}

/** test-support/hosts.json: { count, suites: { name: { test, hosts: [i, ...] } } }. */
export function allocation() {
  return JSON.parse(readFileSync(ALLOCATION_PATH, 'utf8'))
}

export function setupHint() {
  return `run \`bash scripts/testhosts.sh up ${allocation().count}\` and \`eval "$(bash scripts/testhosts.sh env)"\` (as root)`
}

/**
 * The hosts of `suite` without applying the CI rule:
 * `{ hosts: { suite, indices, all, key, state, sudoUser } }`, or
 * `{ missing: message }` (skip, or fail under CI), or `{ invalid: message }`
 * (always a failure).
 */
export function lookup(suite, env = process.env) {
  const entry = allocation().suites[suite]
  if (!entry) throw new Error(`test-support/hosts.json has no suite ${suite}`)
  const want = entry.hosts
  const addrs = (env.MT_HOSTS ?? '').split(/\s+/).filter(Boolean)
  const missing = (what) => ({
    missing: `suite ${suite} (${entry.test}) needs test host${want.length === 1 ? '' : 's'} ${want.join(', ')} of MT_HOSTS, ${what}: ${setupHint()}`,
  })
  const fix = 'eval the whole output of `bash scripts/testhosts.sh env`'
  if (addrs.length === 0) return missing('which is not set')
  const names = (env.MT_HOST_NAMES ?? '').split(/\s+/).filter(Boolean)
  if (names.length > 0 && names.length !== addrs.length) {
    return { invalid: `MT_HOSTS names ${addrs.length} hosts but MT_HOST_NAMES ${names.length}: ${fix}` }
  }
  for (const v of ['MT_KEY', 'MT_STATE']) {
    if (!env[v]) return { invalid: `MT_HOSTS is set but ${v} is not: ${fix}` }
  }
  if (want.some((i) => i >= addrs.length)) return missing(`which names ${addrs.length}`)
  return {
    hosts: {
      suite,
      indices: want,
      all: addrs.map((addr, index) => ({ index, addr, name: names.length > 0 ? names[index] : null })),
      key: env.MT_KEY,
      state: env.MT_STATE,
      sudoUser: env.MT_SUDO_USER || DEFAULT_SUDO_USER,
    },
  }
}

/**
 * The hosts of `suite` for node:test: `{ skip, host(index), key, state, sudoUser }`.
 * `skip` is the `skip` option for `test()`: the message when hosts are
 * missing and CI is not set, else false. `host(index)` returns
 * `{ index, addr, name }` of host `index` of MT_HOSTS and throws when the
 * hosts are missing (under CI), the environment is inconsistent, or the
 * suite does not own that host.
 */
export function forSuite(suite, env = process.env) {
  const found = lookup(suite, env)
  const skip = found.missing !== undefined && !ciIsSet(env) ? found.missing : false
  if (skip) process.stderr.write(`SKIPPED: ${skip}\n`)
  const h = found.hosts
  return {
    skip,
    host(index) {
      if (found.invalid !== undefined) throw new Error(found.invalid)
      if (found.missing !== undefined) throw new Error(`test hosts are required when CI is set: ${found.missing}`)
      if (!h.indices.includes(index)) {
        throw new Error(
          `test host ${index} is not allocated to suite ${suite} (it owns ${JSON.stringify(h.indices)}; see test-support/hosts.json)`,
        )
      }
      return h.all[index]
    },
    key: h?.key,
    state: h?.state,
    sudoUser: h?.sudoUser,
  }
}

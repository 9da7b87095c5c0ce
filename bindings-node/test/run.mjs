#!/usr/bin/env node
// Runs every test/*.test.mjs with Node's test runner, shows the spec report
// and ends with one line `N passed, N failed` (`, N skipped` when some were).
// Exits non-zero when a test failed or was cancelled.
import { run } from 'node:test'
import { spec } from 'node:test/reporters'
import { readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const dir = dirname(fileURLToPath(import.meta.url))
const only = process.argv.slice(2)
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.test.mjs'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort()
  .map((f) => join(dir, f))

const counts = { passed: 0, failed: 0, skipped: 0 }
// Files run one after another: the end-to-end tests share one test host.
const stream = run({ files, concurrency: 1 })
stream.on('test:pass', (t) => {
  if (t.details?.type === 'suite') return
  if (t.skip || t.todo) counts.skipped++
  else counts.passed++
})
stream.on('test:fail', (t) => {
  if (t.details?.type === 'suite') return
  // A file that fails to load is reported as one failed test.
  counts.failed++
})
stream.compose(spec).pipe(process.stdout)
stream.on('end', () => {
  const tail = counts.skipped ? `, ${counts.skipped} skipped` : ''
  // Let the spec reporter flush its summary before the closing line.
  setImmediate(() => {
    process.stdout.write(`${counts.passed} passed, ${counts.failed} failed${tail}\n`)
    process.exitCode = counts.failed > 0 ? 1 : 0
  })
})

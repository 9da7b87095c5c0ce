#!/usr/bin/env node
// A machine driver written in JavaScript: the `inventory` driver takes the
// machines of a fleet from a JSON file and provisions Docker on them over SSH,
// like the generic driver does.
//
//   { "web1": { "address": "192.0.2.10", "user": "root", "port": 22, "key": "/home/me/.ssh/fleet" } }
//
// Run it from the repository after `npm install` in bindings-node:
//
//   node examples/node_custom_driver.js INVENTORY.json NAME \
//       [--engine-opt FLAG]... [--engine-install-url URL] [--keep]
//
// It creates machine NAME in the store (MACHINE_STORAGE_PATH, else
// ~/.docker/machine), runs `uname -sr` on it over SSH, prints the machine's
// `ls` row (with the version of Docker, asked over TLS) and removes the
// machine again unless --keep is given.
'use strict'

const { readFileSync } = require('node:fs')
const net = require('node:net')
// In a project of your own: require('docker-machine-rs').
const { Store } = require('../bindings-node')

function readInventory(file) {
  return JSON.parse(readFileSync(file, 'utf8'))
}

class InventoryDriver {
  // The create options, keyed by flag name in store.create(name, { options }).
  static options = [
    {
      flag: 'inventory-file',
      help: 'JSON file mapping machine names to SSH addresses',
      envVar: 'MACHINE_INVENTORY_FILE',
      required: true,
    },
  ]

  // Called with the create options for a new machine, and with what save()
  // returned for a machine loaded from the store. Throwing fails the call.
  constructor(context, options) {
    this.inventoryFile = options['inventory-file']
    if (options.address) {
      this.entry = { address: options.address, user: options.user, port: options.port, key: options.key }
      return
    }
    const entry = readInventory(this.inventoryFile)[context.machineName]
    if (!entry) throw new Error(`no machine named ${context.machineName} in ${this.inventoryFile}`)
    this.entry = { address: entry.address, user: entry.user ?? 'root', port: entry.port ?? 22, key: entry.key ?? null }
  }

  // What the machine's config.json keeps of the driver: the inventory entry as
  // it was at creation, so that later changes to the file do not move the machine.
  save() {
    return { 'inventory-file': this.inventoryFile, ...this.entry }
  }

  // The machines exist already: creating and removing them only records and forgets them.
  async create() {}
  async remove() {}

  // Running when its SSH port accepts a connection within five seconds.
  state() {
    return new Promise((resolve) => {
      const socket = net.connect({ host: this.entry.address, port: this.entry.port })
      const done = (state) => {
        socket.destroy()
        resolve(state)
      }
      socket.setTimeout(5000, () => done('Stopped'))
      socket.once('connect', () => done('Running'))
      socket.once('error', () => done('Stopped'))
    })
  }

  ip() {
    return this.entry.address
  }

  sshTarget() {
    return { host: this.entry.address, port: this.entry.port, user: this.entry.user, keyPath: this.entry.key ?? undefined }
  }
}

async function main() {
  const [inventory, name, ...rest] = process.argv.slice(2)
  if (!inventory || !name) {
    console.error('usage: node_custom_driver.js INVENTORY.json NAME [--engine-opt FLAG]... [--engine-install-url URL] [--keep]')
    process.exit(2)
  }
  const engine = {}
  let keep = false
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--keep') keep = true
    else if (rest[i] === '--engine-opt') (engine['engine-opt'] ??= []).push(rest[++i])
    else if (rest[i] === '--engine-install-url') engine['engine-install-url'] = rest[++i]
    else throw new Error(`unknown argument ${rest[i]}`)
  }

  const store = new Store()
  store.registerDriver('inventory', InventoryDriver)
  const machine = await store.create(name, {
    driver: 'inventory',
    options: { 'inventory-file': inventory },
    engine,
    onProgress: (step) => console.log(`[${name}] ${step}`),
  })
  const uname = await machine.ssh('uname -sr')
  console.log(`${name} runs ${uname.stdout.trim()} (exit status ${uname.exitStatus}), Docker at ${await machine.url()}`)
  const row = (await store.list()).find((r) => r.name === name)
  console.log(`${row.name}\t${row.driverName}\t${row.state}\t${row.url}\t${row.dockerVersion}`)
  if (!keep) {
    await store.remove(name)
    console.log(`[${name}] removed`)
  }
}

module.exports = { InventoryDriver }

if (require.main === module) {
  main().catch((e) => {
    console.error(`${e.code ?? 'Error'}${e.machine ? ` (${e.machine})` : ''}: ${e.message}`)
    process.exitCode = 1
  })
}

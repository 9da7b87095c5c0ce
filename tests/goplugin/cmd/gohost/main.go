// A plugin host for the tests, in Go with the standard library only: it
// drives a docker-machine-driver-NAME executable the way libmachine does
// (start it with the token, read its address, net/rpc over HTTP with gob)
// and prints what it got as JSON lines.
//
//	gohost -driver NAME -machine M -store DIR [-raw FILE] [-set flag=value ...] OP...
//
// OPs: flags, config (SetConfigFromFlags), precreate, create, state, ip,
// url, ssh, raw (GetConfigRaw), start, stop, restart, kill, remove, name.
// Without -raw the driver gets a bare base driver (machine name, store path)
// first; with it, that saved JSON.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net/rpc"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"machinetest/mcnflag"
	"machinetest/rpcdriver"
)

type sets []string

func (s *sets) String() string     { return strings.Join(*s, ",") }
func (s *sets) Set(v string) error { *s = append(*s, v); return nil }

func out(op string, v interface{}, err error) {
	m := map[string]interface{}{"op": op, "value": v}
	if err != nil {
		m["error"] = err.Error()
	}
	b, _ := json.Marshal(m)
	fmt.Println(string(b))
}

func main() {
	driver := flag.String("driver", "", "driver name")
	machine := flag.String("machine", "m", "machine name")
	store := flag.String("store", "/tmp", "store path")
	raw := flag.String("raw", "", "saved driver JSON file")
	var set sets
	flag.Var(&set, "set", "flag=value (repeatable)")
	flag.Parse()

	path, err := exec.LookPath("docker-machine-driver-" + *driver)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), "MACHINE_PLUGIN_TOKEN=42", "MACHINE_PLUGIN_DRIVER_NAME="+*driver)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	addrCh := make(chan string, 1)
	go func() {
		if sc.Scan() {
			addrCh <- strings.TrimSpace(sc.Text())
		}
		for sc.Scan() {
			fmt.Fprintf(os.Stderr, "(%s) %s\n", *machine, sc.Text())
		}
	}()
	var addr string
	select {
	case addr = <-addrCh:
	case <-time.After(20 * time.Second):
		fmt.Fprintln(os.Stderr, "no address")
		os.Exit(2)
	}
	c, err := rpc.DialHTTP("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	go func() {
		for range time.Tick(5 * time.Second) {
			c.Call("RPCServerDriver.Heartbeat", struct{}{}, nil)
		}
	}()
	call := func(m string, args, reply interface{}) error {
		return c.Call("RPCServerDriver."+m, args, reply)
	}
	var version int
	err = call("GetVersion", struct{}{}, &version)
	out("version", version, err)

	var rawDriver []byte
	if *raw != "" {
		rawDriver, err = os.ReadFile(*raw)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	} else {
		rawDriver, _ = json.Marshal(map[string]interface{}{
			"IPAddress": "", "MachineName": *machine, "SSHUser": "", "SSHPort": 0,
			"SSHKeyPath": "", "StorePath": *store, "SwarmMaster": false, "SwarmHost": "", "SwarmDiscovery": "",
		})
	}
	out("setraw", nil, call("SetConfigRaw", rawDriver, nil))

	var flags []mcnflag.Flag
	for _, op := range flag.Args() {
		var s string
		var n int
		switch op {
		case "flags":
			err := call("GetCreateFlags", struct{}{}, &flags)
			var list []map[string]interface{}
			for _, f := range flags {
				kind := fmt.Sprintf("%T", f)
				list = append(list, map[string]interface{}{"kind": kind, "flag": f})
			}
			out(op, list, err)
		case "config":
			if flags == nil {
				call("GetCreateFlags", struct{}{}, &flags)
			}
			values := map[string]interface{}{}
			for _, f := range flags {
				values[f.String()] = f.Default()
				if f.Default() == nil {
					values[f.String()] = false
				}
			}
			for _, kv := range set {
				k, v, _ := strings.Cut(kv, "=")
				switch values[k].(type) {
				case int:
					n, _ := strconv.Atoi(v)
					values[k] = n
				case bool:
					values[k] = v == "true"
				case []string:
					values[k] = strings.Split(v, ",")
				default:
					values[k] = v
				}
			}
			var opts rpcdriver.DriverOptions = rpcdriver.RPCFlags{Values: values}
			out(op, nil, call("SetConfigFromFlags", &opts, nil))
		case "precreate", "create", "start", "stop", "restart", "kill", "remove":
			m := map[string]string{"precreate": "PreCreateCheck", "create": "Create", "start": "Start",
				"stop": "Stop", "restart": "Restart", "kill": "Kill", "remove": "Remove"}[op]
			out(op, nil, call(m, struct{}{}, nil))
		case "state":
			err := call("GetState", struct{}{}, &n)
			out(op, n, err)
		case "ip", "url", "name", "machine":
			m := map[string]string{"ip": "GetIP", "url": "GetURL", "name": "DriverName", "machine": "GetMachineName"}[op]
			err := call(m, struct{}{}, &s)
			out(op, s, err)
		case "ssh":
			var host, user, key string
			var port int
			e1 := call("GetSSHHostname", struct{}{}, &host)
			e2 := call("GetSSHPort", struct{}{}, &port)
			call("GetSSHUsername", struct{}{}, &user)
			call("GetSSHKeyPath", struct{}{}, &key)
			if e1 == nil {
				e1 = e2
			}
			out(op, map[string]interface{}{"host": host, "port": port, "user": user, "key": key}, e1)
		case "raw":
			var b []byte
			err := call("GetConfigRaw", struct{}{}, &b)
			out(op, json.RawMessage(b), err)
		case "bogus":
			out(op, nil, call("NoSuchMethod", struct{}{}, nil))
		default:
			fmt.Fprintln(os.Stderr, "unknown op", op)
			os.Exit(2)
		}
	}
	out("close", nil, call("Close", struct{}{}, nil))
	cmd.Wait()
}

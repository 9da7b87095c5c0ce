// A driver plugin for the tests, in Go with the standard library only: a
// machine reachable over SSH at a given address (like the generic driver).
// Its flags are named after the driver name it is started for
// (MACHINE_PLUGIN_DRIVER_NAME), so it also serves as a plugin forced over a
// built-in name (generic-*).
//
// GOTEST_CALL_LOG (a file) receives one line per lifecycle call, and the
// process id at start. GOTEST_MODE=silent never prints an address.
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"machinetest/mcnflag"
	"machinetest/rpcdriver"
)

// Driver's exported fields are its saved state (config.json's Driver).
type Driver struct {
	IPAddress   string
	MachineName string
	SSHUser     string
	SSHPort     int
	SSHKeyPath  string
	StorePath   string
	EnginePort  int
	Tags        []string
	Label       string
	Verbose     bool
	FailCreate  bool
	CrashCreate bool
	SleepCreate int
	Created     bool
	Stopped     bool
	prefix      string
}

func logCall(format string, a ...interface{}) {
	path := os.Getenv("GOTEST_CALL_LOG")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, format+"\n", a...)
}

func (d *Driver) DriverName() string { return d.prefix }

func (d *Driver) GetCreateFlags() []mcnflag.Flag {
	p := d.prefix + "-"
	return []mcnflag.Flag{
		mcnflag.StringFlag{Name: p + "ip-address", Usage: "IP address of the machine", EnvVar: "GOTEST_IP_ADDRESS"},
		mcnflag.StringFlag{Name: p + "ssh-user", Usage: "SSH user", Value: "root"},
		mcnflag.StringFlag{Name: p + "ssh-key", Usage: "SSH private key path"},
		&mcnflag.IntFlag{Name: p + "ssh-port", Usage: "SSH port", Value: 22, EnvVar: "GOTEST_SSH_PORT"},
		&mcnflag.IntFlag{Name: p + "engine-port", Usage: "Docker engine port", Value: 2376},
		mcnflag.StringSliceFlag{Name: p + "tags", Usage: "Tags", Value: []string{"a", "b"}},
		mcnflag.StringFlag{Name: p + "label", Usage: "A label", Value: "none", EnvVar: "GOTEST_LABEL"},
		mcnflag.BoolFlag{Name: p + "verbose", Usage: "Log more", EnvVar: "GOTEST_VERBOSE"},
		mcnflag.BoolFlag{Name: p + "fail-create", Usage: "Fail in Create"},
		mcnflag.BoolFlag{Name: p + "crash-create", Usage: "Exit in the middle of Create"},
		&mcnflag.IntFlag{Name: p + "sleep-create", Usage: "Seconds Create takes"},
	}
}

func (d *Driver) SetConfigFromFlags(o rpcdriver.DriverOptions) error {
	p := d.prefix + "-"
	d.IPAddress = o.String(p + "ip-address")
	d.SSHUser = o.String(p + "ssh-user")
	d.SSHKeyPath = o.String(p + "ssh-key")
	d.SSHPort = o.Int(p + "ssh-port")
	d.EnginePort = o.Int(p + "engine-port")
	d.Tags = o.StringSlice(p + "tags")
	d.Label = o.String(p + "label")
	d.Verbose = o.Bool(p + "verbose")
	d.FailCreate = o.Bool(p + "fail-create")
	d.CrashCreate = o.Bool(p + "crash-create")
	d.SleepCreate = o.Int(p + "sleep-create")
	if d.IPAddress == "" {
		return fmt.Errorf("--%sip-address is required", p)
	}
	return nil
}

func (d *Driver) GetMachineName() string          { return d.MachineName }
func (d *Driver) GetIP() (string, error)          { return d.IPAddress, nil }
func (d *Driver) GetSSHHostname() (string, error) { return d.IPAddress, nil }
func (d *Driver) GetSSHPort() (int, error)        { return d.SSHPort, nil }
func (d *Driver) GetSSHUsername() string          { return d.SSHUser }
func (d *Driver) GetSSHKeyPath() string           { return d.SSHKeyPath }

func (d *Driver) GetURL() (string, error) {
	if d.IPAddress == "" {
		return "", errors.New("no IP address yet")
	}
	return "tcp://" + net.JoinHostPort(d.IPAddress, strconv.Itoa(d.EnginePort)), nil
}

func (d *Driver) GetState() (int, error) {
	if d.Stopped {
		return 4, nil // Stopped
	}
	return 1, nil // Running
}

func (d *Driver) PreCreateCheck() error {
	logCall("PreCreateCheck %s", d.MachineName)
	return nil
}

func (d *Driver) Create() error {
	logCall("Create %s label=%s tags=%v port=%d verbose=%v", d.MachineName, d.Label, d.Tags, d.SSHPort, d.Verbose)
	fmt.Println("creating the machine")
	fmt.Fprintln(os.Stderr, "debug line from create")
	if d.SleepCreate > 0 {
		time.Sleep(time.Duration(d.SleepCreate) * time.Second)
	}
	if d.CrashCreate {
		os.Exit(3)
	}
	if d.FailCreate {
		return errors.New("the test plugin was told to fail: quota exceeded")
	}
	d.Created = true
	// the last line right before the answer: the host must still show it
	fmt.Printf("machine %s is created\n", d.MachineName)
	return nil
}

func (d *Driver) Remove() error {
	logCall("Remove %s", d.MachineName)
	return nil
}

func (d *Driver) Start() error   { logCall("Start %s", d.MachineName); d.Stopped = false; return nil }
func (d *Driver) Stop() error    { logCall("Stop %s", d.MachineName); d.Stopped = true; return nil }
func (d *Driver) Restart() error { logCall("Restart %s", d.MachineName); d.Stopped = false; return nil }
func (d *Driver) Kill() error    { logCall("Kill %s", d.MachineName); d.Stopped = true; return nil }

func main() {
	name := os.Getenv("MACHINE_PLUGIN_DRIVER_NAME")
	if name == "" {
		name = "gotest"
	}
	logCall("pid %d", os.Getpid())
	if os.Getenv("GOTEST_MODE") == "silent" {
		time.Sleep(time.Hour)
		return
	}
	rpcdriver.Serve(&Driver{prefix: name})
}

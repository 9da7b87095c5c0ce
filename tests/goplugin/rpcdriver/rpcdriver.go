// Package rpcdriver is the test tree's side of the driver plugin protocol:
// the RPC service a plugin registers and the flag values a host sends. Named
// as libmachine's package so that *rpcdriver.RPCFlags matches on the wire.
package rpcdriver

import (
	"encoding/gob"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/rpc"
	"os"
	"time"

	"machinetest/mcnflag"
)

func init() {
	gob.Register(new(RPCFlags))
	gob.Register(new(mcnflag.IntFlag))
	gob.Register(new(mcnflag.StringFlag))
	gob.Register(new(mcnflag.StringSliceFlag))
	gob.Register(new(mcnflag.BoolFlag))
}

// DriverOptions is what SetConfigFromFlags carries.
type DriverOptions interface {
	String(key string) string
	StringSlice(key string) []string
	Int(key string) int
	Bool(key string) bool
}

// RPCFlags are flag values by flag name.
type RPCFlags struct {
	Values map[string]interface{}
}

func (r RPCFlags) String(k string) string        { v, _ := r.Values[k].(string); return v }
func (r RPCFlags) StringSlice(k string) []string { v, _ := r.Values[k].([]string); return v }
func (r RPCFlags) Int(k string) int              { v, _ := r.Values[k].(int); return v }
func (r RPCFlags) Bool(k string) bool            { v, _ := r.Values[k].(bool); return v }

// Driver is what a plugin serves (a subset of libmachine's drivers.Driver).
type Driver interface {
	DriverName() string
	GetCreateFlags() []mcnflag.Flag
	SetConfigFromFlags(opts DriverOptions) error
	GetMachineName() string
	GetIP() (string, error)
	GetURL() (string, error)
	GetSSHHostname() (string, error)
	GetSSHPort() (int, error)
	GetSSHUsername() string
	GetSSHKeyPath() string
	GetState() (int, error)
	PreCreateCheck() error
	Create() error
	Remove() error
	Start() error
	Stop() error
	Restart() error
	Kill() error
}

// RPCServerDriver is the RPC service.
type RPCServerDriver struct {
	ActualDriver Driver
	CloseCh      chan bool
	HeartbeatCh  chan bool
}

func (r *RPCServerDriver) Close(_, _ *struct{}) error           { r.CloseCh <- true; return nil }
func (r *RPCServerDriver) Heartbeat(_, _ *struct{}) error       { r.HeartbeatCh <- true; return nil }
func (r *RPCServerDriver) GetVersion(_ *struct{}, v *int) error { *v = 1; return nil }
func (r *RPCServerDriver) GetConfigRaw(_ *struct{}, reply *[]byte) error {
	b, err := json.Marshal(r.ActualDriver)
	*reply = b
	return err
}
func (r *RPCServerDriver) SetConfigRaw(data []byte, _ *struct{}) error {
	return json.Unmarshal(data, r.ActualDriver)
}
func (r *RPCServerDriver) GetCreateFlags(_ *struct{}, reply *[]mcnflag.Flag) error {
	*reply = r.ActualDriver.GetCreateFlags()
	return nil
}
func (r *RPCServerDriver) SetConfigFromFlags(flags *DriverOptions, _ *struct{}) error {
	return r.ActualDriver.SetConfigFromFlags(*flags)
}
func (r *RPCServerDriver) DriverName(_ *struct{}, s *string) error {
	*s = r.ActualDriver.DriverName()
	return nil
}
func (r *RPCServerDriver) GetMachineName(_ *struct{}, s *string) error {
	*s = r.ActualDriver.GetMachineName()
	return nil
}
func (r *RPCServerDriver) GetIP(_ *struct{}, s *string) (err error) {
	*s, err = r.ActualDriver.GetIP()
	return
}
func (r *RPCServerDriver) GetURL(_ *struct{}, s *string) (err error) {
	*s, err = r.ActualDriver.GetURL()
	return
}
func (r *RPCServerDriver) GetSSHHostname(_ *struct{}, s *string) (err error) {
	*s, err = r.ActualDriver.GetSSHHostname()
	return
}
func (r *RPCServerDriver) GetSSHPort(_ *struct{}, p *int) (err error) {
	*p, err = r.ActualDriver.GetSSHPort()
	return
}
func (r *RPCServerDriver) GetSSHUsername(_ *struct{}, s *string) error {
	*s = r.ActualDriver.GetSSHUsername()
	return nil
}
func (r *RPCServerDriver) GetSSHKeyPath(_ *struct{}, s *string) error {
	*s = r.ActualDriver.GetSSHKeyPath()
	return nil
}
func (r *RPCServerDriver) GetState(_ *struct{}, s *int) (err error) {
	*s, err = r.ActualDriver.GetState()
	return
}
func (r *RPCServerDriver) PreCreateCheck(_, _ *struct{}) error {
	return r.ActualDriver.PreCreateCheck()
}
func (r *RPCServerDriver) Create(_, _ *struct{}) error  { return r.ActualDriver.Create() }
func (r *RPCServerDriver) Remove(_, _ *struct{}) error  { return r.ActualDriver.Remove() }
func (r *RPCServerDriver) Start(_, _ *struct{}) error   { return r.ActualDriver.Start() }
func (r *RPCServerDriver) Stop(_, _ *struct{}) error    { return r.ActualDriver.Stop() }
func (r *RPCServerDriver) Restart(_, _ *struct{}) error { return r.ActualDriver.Restart() }
func (r *RPCServerDriver) Kill(_, _ *struct{}) error    { return r.ActualDriver.Kill() }

// Serve runs the plugin: check the token, listen on loopback, print the
// address, answer calls; exit on Close or after 10 s without a heartbeat.
func Serve(d Driver) {
	if os.Getenv("MACHINE_PLUGIN_TOKEN") != "42" {
		fmt.Fprintln(os.Stderr, "this is a driver plugin; run it through a host")
		os.Exit(1)
	}
	s := &RPCServerDriver{ActualDriver: d, CloseCh: make(chan bool), HeartbeatCh: make(chan bool)}
	rpc.RegisterName("RpcServerDriver", s)
	rpc.RegisterName("RPCServerDriver", s)
	rpc.HandleHTTP()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "listen: %s\n", err)
		os.Exit(1)
	}
	fmt.Println(l.Addr())
	go http.Serve(l, nil)
	for {
		select {
		case <-s.CloseCh:
			os.Exit(0)
		case <-s.HeartbeatCh:
		case <-time.After(10 * time.Second):
			fmt.Fprintln(os.Stderr, "no heartbeat: exiting")
			os.Exit(1)
		}
	}
}

// Package mcnflag holds the create-flag types of the driver plugin protocol.
// The package is named as libmachine's so that gob's registered names
// (*mcnflag.StringFlag, ...) are the ones on the wire.
package mcnflag

// Flag is one create flag of a driver.
type Flag interface {
	String() string
	Default() interface{}
}

type StringFlag struct {
	Name   string
	Usage  string
	EnvVar string
	Value  string
}

func (f StringFlag) String() string       { return f.Name }
func (f StringFlag) Default() interface{} { return f.Value }

type StringSliceFlag struct {
	Name   string
	Usage  string
	EnvVar string
	Value  []string
}

func (f StringSliceFlag) String() string       { return f.Name }
func (f StringSliceFlag) Default() interface{} { return f.Value }

type IntFlag struct {
	Name   string
	Usage  string
	EnvVar string
	Value  int
}

func (f IntFlag) String() string       { return f.Name }
func (f IntFlag) Default() interface{} { return f.Value }

type BoolFlag struct {
	Name   string
	Usage  string
	EnvVar string
}

func (f BoolFlag) String() string       { return f.Name }
func (f BoolFlag) Default() interface{} { return nil }

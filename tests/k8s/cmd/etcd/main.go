// Command etcd is etcd's server, built from the go.etcd.io/etcd/server/v3 module this module pins.
//
// The module's root package is etcd's main; building it directly names the binary "server"
// (the /v3 suffix is dropped), so this wrapper gives it its real name.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

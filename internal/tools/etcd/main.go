// Command etcd is the etcd server for scripts/cluster.sh's 3-member cluster: upstream's main
// (etcdmain, with every flag of the etcd binary) at the go.etcd.io/etcd/server/v3 version go.mod
// requires, built from this module, which already compiles etcd's server for its embedded etcd.
// Test infrastructure, not the product.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

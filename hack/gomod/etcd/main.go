// Command etcd is etcd's own main (etcdmain.Main), built here because etcd's root module
// cannot be `go install`ed: it carries replace directives. The version reported is etcd's own.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

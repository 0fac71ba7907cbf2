package peertests

import "runtime"

func runtimeGC() {
	runtime.GC()
	runtime.GC()
}

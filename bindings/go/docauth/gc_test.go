package docauth

import "runtime"

func runtimeGC() {
	runtime.GC()
	runtime.GC()
}

package engine

// unregister removes a driver a test registered, so the registry is as the
// test found it and the test can run again in the same process (-count=2).
func unregister(name string) {
	registryMu.Lock()
	defer registryMu.Unlock()
	delete(registry, name)
}

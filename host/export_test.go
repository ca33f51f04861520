package host

// LiveMappings counts guest memories mapped outside the Go heap and not
// yet unmapped.
func LiveMappings() int64 { return liveMappings.Load() }

// MemoryMapped reports whether guest memory lives outside the Go heap on
// this OS.
var MemoryMapped = newLinearMemory(1, nil) != nil

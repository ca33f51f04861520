package host

// LiveMappings counts guest memories mapped outside the Go heap and not
// yet unmapped.
func LiveMappings() int64 { return liveMappings.Load() }

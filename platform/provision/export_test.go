package provision

// QuoteForTest exposes quote to the fuzz test.
var QuoteForTest = quote

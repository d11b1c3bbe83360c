package wire

// PayloadSize exposes Message.size to the tests.
func PayloadSize(m Message) int { return m.size() }

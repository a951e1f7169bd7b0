module github.com/reign-go/reign

go 1.26.8

require (
	github.com/thejerf/suture/v4 v4.0.6
	github.com/vmihailenco/msgpack/v5 v5.4.1
	go.uber.org/goleak v1.3.0
)

require github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect

package rootd

import "encoding/binary"

var wireOrder = binary.NativeEndian

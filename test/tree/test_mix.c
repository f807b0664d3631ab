#include "treeutil.h"
TestSuite(mix, .init = fx_setup, .fini = fx_teardown);

#include "treeutil.h"
TestSuite(model, .init = fx_setup, .fini = fx_teardown);

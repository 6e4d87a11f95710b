// Implementation in progress.
#include "snapshot/archive.h"
